import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rlt.testing import tiny_model, tiny_tokenizer

GSM8K_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def student():
    return tiny_model(seed=0)


@pytest.fixture(scope="session")
def teacher():
    return tiny_model(seed=1)


@pytest.fixture(scope="session")
def gsm8k_test() -> Path:
    path = GSM8K_DIR / "test.jsonl"
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests read GSM8K from ../shared/data/gsm8k beside the checkout")
    return path
