"""End to end against a running hver: a tiny Icelandic dataset and a tiny model.

Pushes a text dataset and a small GPT-2-style model (tokenizer trained here, a few
training steps on the same sentences) to the hub, then loads both back in a fresh
Python process from an empty cache and prints a sample. Nothing comes from outside
your hub.

    export HF_ENDPOINT=http://127.0.0.1:8080
    export HF_TOKEN=$(.venv/bin/hver token create alice)
    .venv/bin/pip install 'torch==2.13.0' transformers datasets
    .venv/bin/python examples/icelandic_demo.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

SENTENCES = [
    "Góðan daginn, hvernig hefur þú það?",
    "Ég heiti Sigríður og ég bý í Reykjavík.",
    "Veðrið er kalt en sólin skín á jöklana.",
    "Hann las bókina um sögu Íslands í gærkvöldi.",
    "Við fórum í sund og svo fengum við okkur kaffi.",
    "Hestarnir hlupu yfir heiðina í rokinu.",
    "Norðurljósin dönsuðu yfir firðinum í nótt.",
    "Amma bakaði pönnukökur handa öllum börnunum.",
    "Skipið sigldi út úr höfninni í morgunsárið.",
    "Eldfjallið gaus og askan barst til austurs.",
    "Þau lærðu íslensku í háskólanum í vetur.",
    "Fiskimennirnir komu heim með mikinn afla.",
]


def push(user: str, epochs: int) -> tuple[str, str]:
    import torch
    from datasets import Dataset, DatasetDict
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    dataset_id, model_id = f"{user}/islenska-setningar", f"{user}/islenska-tiny-gpt"

    data = DatasetDict({
        "train": Dataset.from_dict({"text": SENTENCES[:10]}),
        "test": Dataset.from_dict({"text": SENTENCES[10:]}),
    })
    data.push_to_hub(dataset_id)
    print(f"pushed dataset {dataset_id}: {data}")

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(SENTENCES * 20, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    raw.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>",
                                        eos_token="<|endoftext|>", bos_token="<|endoftext|>")

    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=64, n_layer=2,
                        n_head=2, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):  # a few passes: enough to make the sample look Icelandic
        for sentence in SENTENCES:
            ids = tokenizer(sentence + tokenizer.eos_token, return_tensors="pt").input_ids
            loss = model(ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    print(f"trained {model_id}: final loss {loss.item():.2f}")
    model.push_to_hub(model_id)
    tokenizer.push_to_hub(model_id)
    print(f"pushed model {model_id}")
    return dataset_id, model_id


LOAD = """
import sys
import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

dataset_id, model_id, cache = sys.argv[1:4]
torch.manual_seed(0)
data = load_dataset(dataset_id, cache_dir=cache)
print("dataset:", data)
print("first training sentence:", data["train"][0]["text"])
tokenizer = AutoTokenizer.from_pretrained(model_id, cache_dir=cache)
model = AutoModelForCausalLM.from_pretrained(model_id, cache_dir=cache)
prompt = "Ég heiti"
ids = tokenizer(prompt, return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=12, do_sample=False,
                     pad_token_id=tokenizer.eos_token_id)
print("model sample:", tokenizer.decode(out[0], skip_special_tokens=True))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="training passes (default 40)")
    args = parser.parse_args()
    if not os.environ.get("HF_ENDPOINT") or not os.environ.get("HF_TOKEN"):
        print("Set HF_ENDPOINT (your hver, e.g. http://127.0.0.1:8080) and HF_TOKEN.",
              file=sys.stderr)
        return 2
    from huggingface_hub import whoami

    user = whoami()["name"]
    dataset_id, model_id = push(user, args.epochs)
    with tempfile.TemporaryDirectory() as cache:  # a fresh process and an empty cache
        subprocess.run([sys.executable, "-c", LOAD, dataset_id, model_id, cache], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
