raise ImportError(
    "recipes/ holds scripts, not a package: run them, e.g. "
    "`torchrun --nproc_per_node=1 recipes/train_tokenizer.py --config recipes/configs/tokenizer/tiny.yaml`; "
    "shared logic lives in `lmmsn`"
)
