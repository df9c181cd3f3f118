"""Shard format and webdataset readers for tokenizer and LLM training."""
