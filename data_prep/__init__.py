"""Command-line tools: raw audio datasets -> webdataset shards of VAE latents (and codes).

- `data_prep.adapters`: read the on-disk layouts of public datasets into `Record`s.
- `python -m data_prep.make_shards`: records -> fixed-length segments -> VAE latents -> shards.
"""
