"""Reading datasets: formats, splits, system prompts, and errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from tests.conftest import ELON_GPT4, EXAMPLE_DATA
from tonetune.data.chat import IGNORE_INDEX, tokenize_conversation
from tonetune.data.datamodule import ChatDataModule
from tonetune.data.loading import Columns, load_conversations
from tonetune.errors import DataError
from tonetune.persona import with_system_prompt


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_question_answer_rows_become_chat_messages(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": " Q1 ", "answer": "A1", "category": "fun"}])
    data = load_conversations(path)
    assert list(data) == ["train"]
    assert data["train"][0] == {
        "messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}],
        "category": "fun",
    }


def test_shared_gpt4_file_is_split_by_its_split_field() -> None:
    data = load_conversations(ELON_GPT4)
    assert {name: len(split) for name, split in data.items()} == {"train": 152, "test": 48}


def test_custom_column_names(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Q", "completion": "A"}])
    data = load_conversations(path, Columns(question="prompt", answer="completion"))
    assert data["train"][0]["messages"][1]["content"] == "A"


def test_openai_chat_format_rows(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", [{"messages": messages}])
    assert load_conversations(path)["train"][0]["messages"] == messages


def test_datasets_folder_with_splits(tmp_path: Path) -> None:
    row = {"question": "Q", "answer": "A", "category": "c"}
    DatasetDict(train=Dataset.from_list([row] * 3), test=Dataset.from_list([row])).save_to_disk(
        tmp_path / "ds"
    )
    data = load_conversations(tmp_path / "ds")
    assert (len(data["train"]), len(data["test"])) == (3, 1)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['{"question": "Q", "answer": "A"}', '{"question": "Q2", "answer": '], "line 2: not valid JSON"),
        (['{"question": "Q"}'], "line 1: field 'answer' is missing"),
        (['{"question": "Q", "answer": "   "}'], "line 1: field 'answer' is empty"),
        (['["not", "an", "object"]'], "line 1: expected a JSON object"),
        (['{"messages": [{"role": "user", "content": "Q"}]}'], "must end with an assistant message"),
        (
            ['{"messages": [{"role": "robot", "content": "Q"}, {"role": "assistant", "content": "A"}]}'],
            "messages[0].role='robot'",
        ),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, lines: list[str], expected: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError) as err:
        load_conversations(path)
    message = str(err.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "Q", "answer": ""}] * 5)
    with pytest.raises(DataError, match=r"line 1: .*line 2: .*line 3: .*\(and 2 more problems\)"):
        load_conversations(path)


def test_missing_source_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.source=.*nope.jsonl: no such file"):
        load_conversations(tmp_path / "nope.jsonl")


def test_missing_dataset_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"data.source=data/no_persona: no such file or folder.*tonetune-synthesize"
    ):
        load_conversations("data/no_persona")


def test_bad_input_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"question": "Q", "answer": "A"}', "{oops"])
    before = path.read_bytes()
    with pytest.raises(DataError):
        load_conversations(path)
    assert path.read_bytes() == before


def test_system_prompt_is_prepended_only_when_missing() -> None:
    chat = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    assert with_system_prompt(chat, None) == chat
    assert with_system_prompt(chat, "Be Yoda")[0] == {"role": "system", "content": "Be Yoda"}
    own = [{"role": "system", "content": "Mine"}, *chat]
    assert with_system_prompt(own, "Be Yoda") == own


def test_labels_cover_only_the_answer_and_its_end_of_turn(smollm_tokenizer) -> None:
    tok = smollm_tokenizer
    chat = [{"role": "user", "content": "Hi there?"}, {"role": "assistant", "content": "Rockets! 🚀 #Mars"}]
    encoded = tokenize_conversation(tok, chat, max_length=512)
    trained = [
        t for t, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label != IGNORE_INDEX
    ]
    assert tok.decode(trained).startswith("Rockets! 🚀 #Mars<|im_end|>")
    assert tok.eos_token_id in trained
    first_trained = encoded["labels"].index(trained[0])
    prompt = tok.decode(encoded["input_ids"][:first_trained])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert all(label == IGNORE_INDEX for label in encoded["labels"][:first_trained])
    assert "Hi there?" in prompt


def test_multi_turn_conversations_train_every_assistant_turn(smollm_tokenizer) -> None:
    tok = smollm_tokenizer
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "One?"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Two?"},
        {"role": "assistant", "content": "Second answer."},
    ]
    encoded = tokenize_conversation(tok, chat, max_length=512)
    trained = tok.decode(
        [t for t, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label != IGNORE_INDEX]
    )
    assert "First answer.<|im_end|>" in trained
    assert "Second answer.<|im_end|>" in trained
    assert "One?" not in trained and "Be brief." not in trained
    assert trained.count("<|im_end|>") == 2


def test_datamodule_batches_are_padded_dynamically(smollm_tokenizer) -> None:
    data = ChatDataModule(str(EXAMPLE_DATA), tokenizer=smollm_tokenizer, batch_size=4, group_by_length=True)
    data.setup()
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 48
    widths = []
    for batch in data.train_dataloader():
        assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
        assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
        widths.append(batch["input_ids"].shape[1])
        assert batch["attention_mask"].sum(1).max() == batch["input_ids"].shape[1]
    assert len(set(widths)) > 1


def test_length_grouping_cuts_padding(smollm_tokenizer) -> None:
    def padding_share(group: bool) -> float:
        data = ChatDataModule(str(ELON_GPT4), tokenizer=smollm_tokenizer, batch_size=8, group_by_length=group)
        data.setup()
        batches = list(data.train_dataloader())
        padded = sum(b["attention_mask"].numel() for b in batches)
        real = sum(int(b["attention_mask"].sum()) for b in batches)
        return 1 - real / padded

    assert padding_share(True) < padding_share(False)


def test_validation_split_is_held_out_from_train(smollm_tokenizer) -> None:
    data = ChatDataModule(str(ELON_GPT4), tokenizer=smollm_tokenizer, val_fraction=0.1)
    data.setup()
    assert (len(data.splits["train"]), len(data.splits["validation"])) == (137, 15)
    train_ids = {tuple(x) for x in data.splits["train"]["input_ids"]}
    assert not any(tuple(x) in train_ids for x in data.splits["validation"]["input_ids"])
