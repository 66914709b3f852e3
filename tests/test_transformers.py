"""transformers' public API, default settings, against a real hver server.

Tiny random-init models and tokenizers trained in the test on a few KB of text are pushed with
`push_to_hub` and read back with `from_pretrained` / `pipeline` from fresh caches. Nothing is
fetched from anywhere but the session server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    pipeline,
)

if TYPE_CHECKING:
    from conftest import Server, User

torch.set_num_threads(1)

pytestmark = pytest.mark.usefixtures("no_server_errors")

_SENTENCES = [
    "Það var einu sinni kóngur og drottning í ríki sínu.",
    "Þau áttu eina dóttur sem hét Ása og hún var fögur.",
    "Á vetrum snjóaði mikið og fjöllin voru hvít af snjó.",
    "Hestarnir hlupu yfir heiðina þegar sólin kom upp.",
    "Fiskimennirnir réru út á fjörðinn snemma á morgnana.",
    "Amma sagði sögur um álfa og huldufólk í hólunum.",
    "Veðrið á Íslandi breytist oft á stuttum tíma.",
    "Börnin léku sér við lækinn og byggðu stíflur úr steinum.",
    "Í bókinni voru margar gamlar vísur og þulur.",
    "Skipið sigldi norður með ströndinni í þoku og vindi.",
]
CORPUS = [f"{s} {t}" for s in _SENTENCES for t in _SENTENCES[::3]] * 4  # a few KB
SAMPLES = ["Það var einu sinni kóngur.", "Hestarnir hlupu yfir fjöllin í þoku!", "Ása og álfar"]
PROMPT = "Amma sagði sögur um"


# ------------------------------------------------------------------------------------ builders


def bpe_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        unk_token="<|endoftext|>", pad_token="<|endoftext|>",
    )


def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=200, special_tokens=specials, show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )


def gpt2(vocab: int, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def bert_classifier(vocab: int, seed: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3,
                     id2label={0: "neikvætt", 1: "hlutlaust", 2: "jákvætt"},
                     label2id={"neikvætt": 0, "hlutlaust": 1, "jákvætt": 2})
    return BertForSequenceClassification(cfg).eval()


# ------------------------------------------------------------------------------------ helpers


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k


def assert_same_tokenizer(a: Any, b: Any) -> None:
    for text in SAMPLES:
        assert a(text)["input_ids"] == b(text)["input_ids"], text
        assert a.tokenize(text) == b.tokenize(text), text
    assert a.get_vocab() == b.get_vocab()
    assert a.all_special_tokens == b.all_special_tokens


def greedy(model: Any, tok: Any, n: int = 8) -> list[int]:
    ids = tok(PROMPT, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=0)
    return [int(x) for x in out[0]]


def repo_files(api: HfApi, repo_id: str, revision: str | None = None) -> set[str]:
    return set(api.list_repo_files(repo_id, revision=revision))


def fresh(tmp_path: Path, name: str) -> str:
    d = tmp_path / f"cache-{name}"
    d.mkdir()
    return str(d)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def bpe() -> PreTrainedTokenizerFast:
    return bpe_tokenizer()


@pytest.fixture(scope="module")
def wordpiece() -> PreTrainedTokenizerFast:
    return wordpiece_tokenizer()


@pytest.fixture(scope="module")
def org(server: Server, user: User) -> str:
    name = f"skald-{uuid.uuid4().hex[:6]}"
    server.hver("org", "create", name, "--owner", user.name)
    return name


@pytest.fixture
def hub(server: Server, user: User) -> HfApi:
    return HfApi(endpoint=server.endpoint, token=user.token)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------------------ tests


def test_user_public_push_and_auto_load(
    hub: HfApi, user: User, bpe: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    """Public repo in the user namespace: bytes, Auto* classes and a greedy pipeline."""
    repo_id = f"{user.name}/{_name('gpt2-litill')}"
    model = gpt2(len(bpe), seed=1)
    model.push_to_hub(repo_id, token=user.token, create_pr=False)
    bpe.push_to_hub(repo_id, token=user.token, create_pr=False)

    info = hub.model_info(repo_id)
    assert info.private is False
    files = repo_files(hub, repo_id)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "README.md"} <= files, files
    assert not any(f.endswith(".bin") for f in files)
    # Weights are large-file (Xet/LFS) entries, as .gitattributes on the Hub has it; JSON is not.
    infos = {p.path: p for p in hub.get_paths_info(repo_id, ["model.safetensors", "config.json"])}
    st, cfg = infos["model.safetensors"], infos["config.json"]
    assert st.lfs is not None and st.lfs.size == st.size > 0
    assert cfg.lfs is None

    # The bytes that came back are those save_pretrained writes locally.
    local = tmp_path / "local"
    model.save_pretrained(local)
    bpe.save_pretrained(local)
    dl = fresh(tmp_path, "raw")
    for fname in ("model.safetensors", "config.json", "tokenizer.json"):
        got = Path(hf_hub_download(repo_id, fname, cache_dir=dl, token=user.token))
        if fname == "model.safetensors":
            remote, mine = load_file(got), load_file(local / fname)
            assert remote.keys() == mine.keys()
            assert all(torch.equal(remote[k], mine[k]) for k in mine)
        else:
            assert json.loads(got.read_bytes()) == json.loads((local / fname).read_bytes())

    cache = fresh(tmp_path, "auto")
    config = AutoConfig.from_pretrained(repo_id, cache_dir=cache)
    assert config.model_type == "gpt2" and config.n_embd == 32 and config.n_layer == 2
    assert config.vocab_size == len(bpe)
    tok = AutoTokenizer.from_pretrained(repo_id, cache_dir=cache)
    assert_same_tokenizer(tok, bpe)
    loaded = AutoModelForCausalLM.from_pretrained(repo_id, cache_dir=cache)
    assert type(loaded) is GPT2LMHeadModel
    assert_same_weights(loaded, model)
    assert greedy(loaded, tok) == greedy(model, bpe)

    gen = pipeline("text-generation", model=repo_id, model_kwargs={"cache_dir": cache})
    out = gen(PROMPT, max_new_tokens=8, do_sample=False, return_full_text=True)
    expected = bpe.decode(greedy(model, bpe))
    assert out[0]["generated_text"] == expected


def test_org_private_push_and_load(
    hub: HfApi, user: User, other: User, org: str, wordpiece: PreTrainedTokenizerFast,
    tmp_path: Path,
) -> None:
    """Private repo in an org: the owner loads it (classifier + pipeline), others cannot."""
    repo_id = f"{org}/{_name('flokkari')}"
    model = bert_classifier(len(wordpiece), seed=2)
    model.push_to_hub(repo_id, token=user.token, private=True, create_pr=False)
    wordpiece.push_to_hub(repo_id, token=user.token, create_pr=False)

    info = hub.model_info(repo_id)
    assert info.private is True
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= repo_files(hub, repo_id)

    cache = fresh(tmp_path, "org")
    tok = AutoTokenizer.from_pretrained(repo_id, cache_dir=cache, token=user.token)
    assert_same_tokenizer(tok, wordpiece)
    assert tok("Ása og álfar")["input_ids"][0] == wordpiece.cls_token_id
    loaded = AutoModelForSequenceClassification.from_pretrained(
        repo_id, cache_dir=cache, token=user.token)
    assert type(loaded) is BertForSequenceClassification
    assert loaded.config.id2label == model.config.id2label
    assert_same_weights(loaded, model)

    clf = pipeline("text-classification", model=repo_id, token=user.token, top_k=None,
                   model_kwargs={"cache_dir": cache})
    (scores,) = clf([SAMPLES[1]])
    got = {d["label"]: d["score"] for d in scores}
    with torch.no_grad():
        probs = model(**wordpiece(SAMPLES[1], return_tensors="pt")).logits.softmax(-1)[0]
    want = {model.config.id2label[i]: float(p) for i, p in enumerate(probs)}
    assert got.keys() == want.keys()
    for label, score in want.items():
        assert got[label] == pytest.approx(score, abs=1e-6), label

    # Another user, and nobody, get the repo-not-found error transformers raises for a missing
    # repo: OSError caused by huggingface_hub's RepositoryNotFoundError.
    for token in (other.token, False):
        for load in (AutoConfig.from_pretrained, AutoTokenizer.from_pretrained,
                     AutoModel.from_pretrained):
            with pytest.raises(OSError, match="is not a local folder") as exc:
                load(repo_id, cache_dir=fresh(tmp_path, uuid.uuid4().hex[:6]), token=token)
            assert isinstance(exc.value.__cause__, RepositoryNotFoundError), (
                load, token, type(exc.value.__cause__))


def test_user_private_not_visible_to_other(
    user: User, other: User, bpe: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    repo_id = f"{user.name}/{_name('leynd')}"
    model = gpt2(len(bpe), seed=3)
    model.push_to_hub(repo_id, token=user.token, private=True)
    loaded = AutoModelForCausalLM.from_pretrained(
        repo_id, cache_dir=fresh(tmp_path, "owner"), token=user.token)
    assert_same_weights(loaded, model)
    with pytest.raises(OSError, match="is not a local folder") as exc:
        AutoModelForCausalLM.from_pretrained(
            repo_id, cache_dir=fresh(tmp_path, "other"), token=other.token)
    assert isinstance(exc.value.__cause__, RepositoryNotFoundError), type(exc.value.__cause__)
    # Same as a repo that does not exist at all.
    with pytest.raises(OSError, match="is not a local folder") as missing:
        AutoModelForCausalLM.from_pretrained(
            f"{user.name}/{_name('ekki-til')}", cache_dir=fresh(tmp_path, "none"),
            token=other.token)
    assert type(missing.value.__cause__) is type(exc.value.__cause__)


def test_branch_tag_and_commit_revisions(
    hub: HfApi, user: User, org: str, bpe: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    """Org repo: main v1 → tag + sha; a branch with other weights; main v2 on top."""
    repo_id = f"{org}/{_name('utgafur')}"
    v1, dev, v2 = (gpt2(len(bpe), seed=s) for s in (10, 11, 12))
    v1.push_to_hub(repo_id, token=user.token, create_pr=False)
    bpe.push_to_hub(repo_id, token=user.token, create_pr=False)
    sha1 = hub.model_info(repo_id).sha
    assert sha1 and len(sha1) == 40
    hub.create_tag(repo_id, tag="v1.0", revision=sha1)

    dev.push_to_hub(repo_id, token=user.token, revision="tilraun", create_pr=False)
    refs = hub.list_repo_refs(repo_id)
    branches = {b.name: b.target_commit for b in refs.branches}
    assert branches.keys() == {"main", "tilraun"}
    sha_dev = branches["tilraun"]
    assert sha_dev not in (sha1, None)
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", sha1)]
    assert hub.model_info(repo_id).sha == sha1  # the branch push left main alone

    v2.push_to_hub(repo_id, token=user.token, create_pr=False)
    sha2 = hub.model_info(repo_id).sha
    assert sha2 != sha1

    cases = [(None, v2, sha2), ("main", v2, sha2), ("tilraun", dev, sha_dev), ("v1.0", v1, sha1),
             (sha1, v1, sha1), (sha2, v2, sha2), (sha_dev, dev, sha_dev)]
    for rev, want, sha in cases:
        cache = fresh(tmp_path, f"rev-{rev}")
        got = AutoModelForCausalLM.from_pretrained(repo_id, revision=rev, cache_dir=cache)
        assert_same_weights(got, want)
        # The tokenizer was committed before the branch was cut: every revision has it.
        tok = AutoTokenizer.from_pretrained(repo_id, revision=rev, cache_dir=cache)
        assert_same_tokenizer(tok, bpe)
        # The cache files the snapshot under the commit the revision resolved to.
        (repo_cache,) = Path(cache).glob("models--*")
        assert [p.name for p in (repo_cache / "snapshots").iterdir()] == [sha], rev
        if rev is not None and rev != sha:
            assert (repo_cache / "refs" / rev).read_text() == sha, rev

    with pytest.raises(OSError, match="not a valid git identifier"):
        AutoConfig.from_pretrained(repo_id, revision="ekki-til", cache_dir=fresh(tmp_path, "bad"))


def test_sharded_safetensors(
    hub: HfApi, user: User, bpe: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    repo_id = f"{user.name}/{_name('brotid')}"
    model = gpt2(len(bpe), seed=4)
    model.push_to_hub(repo_id, token=user.token, max_shard_size="20KB", create_pr=False)

    files = repo_files(hub, repo_id)
    shards = sorted(f for f in files if f.startswith("model-") and f.endswith(".safetensors"))
    assert "model.safetensors.index.json" in files and "model.safetensors" not in files, files
    assert len(shards) >= 3, shards
    n = len(shards)
    assert shards == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]

    cache = fresh(tmp_path, "shards")
    index = json.loads(Path(hf_hub_download(
        repo_id, "model.safetensors.index.json", cache_dir=cache)).read_text())
    assert set(index["weight_map"].values()) == set(shards)
    merged: dict[str, torch.Tensor] = {}
    for shard in shards:
        merged.update(load_file(hf_hub_download(repo_id, shard, cache_dir=cache)))
    assert set(merged) == set(index["weight_map"])
    state = model.state_dict()
    for k, t in merged.items():
        assert torch.equal(t, state[k]), k

    loaded = AutoModelForCausalLM.from_pretrained(repo_id, cache_dir=fresh(tmp_path, "shards2"))
    assert_same_weights(loaded, model)


OFFLINE_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    repo_id, cache, prompt = sys.argv[1:4]
    tok = AutoTokenizer.from_pretrained(repo_id, cache_dir=cache)
    model = AutoModelForCausalLM.from_pretrained(repo_id, cache_dir=cache).eval()
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        logits = model(**ids).logits
    print(json.dumps({"ids": [int(x) for x in out[0]], "logits": logits.flatten().tolist(),
                      "enc": [tok(t)["input_ids"] for t in sys.argv[4:]]}))
""")


def test_offline_reload_in_subprocess(
    user: User, bpe: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    repo_id = f"{user.name}/{_name('otengdur')}"
    model = gpt2(len(bpe), seed=5)
    model.push_to_hub(repo_id, token=user.token)
    bpe.push_to_hub(repo_id, token=user.token)

    cache = fresh(tmp_path, "offline")
    AutoTokenizer.from_pretrained(repo_id, cache_dir=cache)
    online = AutoModelForCausalLM.from_pretrained(repo_id, cache_dir=cache)
    assert_same_weights(online, model)

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, repo_id, cache, PROMPT, *SAMPLES],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["ids"] == greedy(model, bpe)
    with torch.no_grad():
        want_logits = model(**bpe(PROMPT, return_tensors="pt")).logits.flatten().tolist()
    assert got["logits"] == pytest.approx(want_logits, abs=1e-5)
    assert got["enc"] == [bpe(t)["input_ids"] for t in SAMPLES]


def test_push_to_hub_create_pr(server: Server, hub: HfApi, user: User, other: User,
                               bpe: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    """A reader proposes a fine-tuned model to another user's repo with push_to_hub's
    create_pr; from_pretrained reads the proposal at refs/pr/N; the owner merges it."""
    repo_id = f"{user.name}/{_name('gpt2-pr')}"
    gpt2(len(bpe), seed=1).push_to_hub(repo_id, token=user.token, create_pr=False)
    tuned = gpt2(len(bpe), seed=2)
    info = tuned.push_to_hub(repo_id, token=other.token, create_pr=True)
    assert info.pr_revision == "refs/pr/1"
    bpe.push_to_hub(repo_id, token=other.token, revision=info.pr_revision)
    cache = fresh(tmp_path, "pr")
    loaded = AutoModelForCausalLM.from_pretrained(repo_id, revision="refs/pr/1", cache_dir=cache)
    assert_same_weights(loaded, tuned)
    tok = AutoTokenizer.from_pretrained(repo_id, revision="refs/pr/1", cache_dir=cache)
    assert_same_tokenizer(tok, bpe)
    hub.merge_pull_request(repo_id, 1)
    merged = AutoModelForCausalLM.from_pretrained(repo_id, cache_dir=fresh(tmp_path, "main"))
    assert_same_weights(merged, tuned)
