import pytest
import torch

from rnnkit.data.corpus import default_corpus, load_corpus, read_text, split_text
from rnnkit.data.text import UNK, build_char_vocab, tokenize


def _text(n: int) -> str:
    """n characters of lines of varying length (deterministic)."""
    out, i = [], 0
    while sum(map(len, out)) < n:
        out.append("ab cd efg"[: 3 + i % 7] + "\n")
        i += 1
    return "".join(out)[:n]


def test_single_file_split_is_nanogpt_rule(tmp_path):
    text = _text(1000)
    (tmp_path / "input.txt").write_text(text, encoding="utf-8")
    c = load_corpus(tmp_path / "input.txt")
    assert len(c.train) == 900 and len(c.valid) == 100 and c.test is None
    assert c.vocab.tokens == sorted(set(text))
    assert c.vocab.decode(c.train) == text[:900]
    assert c.vocab.decode(c.valid) == text[900:]
    assert c.train.dtype == torch.long and c.train.dim() == 1


def test_split_with_test_fraction_order(tmp_path):
    text = _text(1000)
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    c = load_corpus(path, valid_fraction=0.1, test_fraction=0.05)
    assert (len(c.train), len(c.valid), len(c.test)) == (850, 100, 50)
    assert c.vocab.decode(c.test) == text[950:]
    assert torch.equal(c.split("test"), c.test)


def test_split_rule_matches_int_n_times_fraction():
    for n in (7, 101, 997, 12345):
        text = "x" * n
        train, valid, test = split_text(text)
        assert len(train) == int(n * 0.9) and len(valid) == n - int(n * 0.9) and test is None


def test_word_level_snaps_cut_to_next_line_and_vocab_from_train(tmp_path):
    lines = [f"w{i % 13} common line{i}" for i in range(100)]
    text = "\n".join(lines) + "\n"
    path = tmp_path / "words.txt"
    path.write_text(text, encoding="utf-8")
    c = load_corpus(path, level="word")
    train_text, valid_text, _ = split_text(text, "word")
    cut = int(len(text) * 0.9)
    assert (
        len(train_text) >= cut and train_text.endswith("\n") and text[len(train_text) - 1] == "\n"
    )
    assert train_text + valid_text == text
    assert len(train_text) - cut < max(map(len, lines)) + 1
    # every line is whole: tokenising the parts equals tokenising the text
    n_train = len(tokenize(train_text, "word"))
    assert len(c.train) == n_train and len(c.train) + len(c.valid) == len(tokenize(text, "word"))
    # words seen only in validation ("line95") are <unk>; vocab built from train only
    assert "line95" not in c.vocab and "line5" in c.vocab
    assert (c.valid == c.vocab.unk_index).sum().item() == len(valid_text.splitlines())


@pytest.mark.parametrize(
    "names", [("train.txt", "valid.txt", "test.txt"), ("ptb.train.txt", "ptb.valid.txt", None)]
)
def test_directory_layouts(tmp_path, names):
    texts = ["a b c\nb c\n", "c b a\nd\n", "a a\n"]
    for name, text in zip(names, texts):
        if name:
            (tmp_path / name).write_text(text, encoding="utf-8")
    c = load_corpus(tmp_path, level="word", valid_fraction=0.5)  # fractions ignored for a dir
    assert c.vocab.decode(c.train) == texts[0]
    assert c.vocab.decode(c.valid) == "c b a\n<unk>\n"  # d is unseen in train
    if names[2]:
        assert c.vocab.decode(c.test) == texts[2]
    else:
        assert c.test is None
        with pytest.raises(ValueError, match="no test split"):
            c.split("test")


def test_directory_with_input_txt_and_missing_layout(tmp_path):
    (tmp_path / "input.txt").write_text(_text(200), encoding="utf-8")
    assert len(load_corpus(tmp_path).train) == 180
    empty_dir = tmp_path / "sub"
    empty_dir.mkdir()
    with pytest.raises(FileNotFoundError, match="train.txt"):
        load_corpus(empty_dir)


def test_char_vocab_covers_all_directory_parts(tmp_path):
    (tmp_path / "train.txt").write_text("aaaa", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("abab", encoding="utf-8")
    c = load_corpus(tmp_path)
    assert c.vocab.tokens == ["a", "b"]


def test_bad_utf8_names_file_and_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello world" + b"\xff\xfe" + b" more text")
    with pytest.raises(ValueError, match=r"bad\.txt.*byte offset 11"):
        load_corpus(path)


def test_empty_and_too_short_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.txt.*empty"):
        load_corpus(empty)
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij", encoding="utf-8")  # valid part would be 1 char
    with pytest.raises(ValueError, match=r"short\.txt.*valid part.*too short"):
        load_corpus(short)
    with pytest.raises(FileNotFoundError):
        load_corpus(tmp_path / "missing.txt")


def test_bad_fractions(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(_text(100), encoding="utf-8")
    for valid, test in [(0.0, 0.0), (1.0, 0.0), (0.5, 0.5), (0.1, -0.1)]:
        with pytest.raises(ValueError, match="fraction"):
            load_corpus(path, valid_fraction=valid, test_fraction=test)


def test_newlines_normalised_and_bom_dropped(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"\xef\xbb\xbfab\r\ncd\re\n")
    assert read_text(path) == "ab\ncd\ne\n"


def test_given_vocab_reused_and_unknown_char_error(tmp_path):
    text = _text(1000)
    path = tmp_path / "a.txt"
    path.write_text(text, encoding="utf-8")
    vocab = build_char_vocab(text + "Z")
    c = load_corpus(path, vocab=vocab)
    assert c.vocab is vocab and c.vocab.decode(c.train) == text[:900]
    other = tmp_path / "b.txt"
    other.write_text(text[:950] + "Q" + text[951:], encoding="utf-8")
    with pytest.raises(ValueError, match=r"'Q' at character offset 950"):
        load_corpus(other, vocab=vocab)
    with pytest.raises(ValueError, match="word"):
        load_corpus(path, level="word", vocab=vocab)


def test_given_vocab_with_unk_maps_unknown(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("a b\n" * 45 + "c\n" * 10, encoding="utf-8")  # cut at 180, a line start
    first = load_corpus(path, level="word")
    again = load_corpus(path, level="word", vocab=first.vocab)
    assert torch.equal(first.train, again.train) and torch.equal(first.valid, again.valid)
    assert UNK in first.vocab and "c" not in first.vocab
    assert set(first.valid.tolist()) == {first.vocab.unk_index, first.vocab.eos_index}


def test_default_corpus_deterministic_python_source():
    text = default_corpus(max_chars=200_000, seed=0)
    assert 0 < len(text) <= 200_000 and len(text) > 150_000
    assert "def " in text and "import " in text
    assert default_corpus(max_chars=200_000, seed=0) == text
    other = default_corpus(max_chars=200_000, seed=1)
    assert other != text and len(other) <= 200_000
    with pytest.raises(ValueError, match="max_chars"):
        default_corpus(max_chars=0)


def test_load_corpus_none_is_default_corpus_split():
    c = load_corpus(None)
    n = len(default_corpus())
    assert len(c.train) == int(n * 0.9) and len(c.train) + len(c.valid) == n
    assert "stdlib" in c.source
