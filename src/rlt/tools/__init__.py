"""Reading and showing results: the HTML inspector (`inspector`), run curves (`plots`), and the whole pipeline at
small scale (`demo`)."""
