"""Training: the scaffold both model families share (`common`), the tokenizer and LLM Lightning modules."""
