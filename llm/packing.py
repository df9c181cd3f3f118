"""Padding-free batches: several examples per row, positions restarting, attention kept apart.

`BatchConfig.packing` packs a whole length-sorting buffer at once (`packed_batches`): the
buffer's examples (the same buffers bucketing fills) go into rows of at most `max_length`
tokens by first-fit decreasing, and the rows are dealt into exactly as many batches as
bucketing would cut from that buffer, so batch counts, DDP balance and mid-epoch resume do not
change; a batch then holds `batch_size` examples on average, not exactly. Packing each batch
on its own (`collate_packed`, at the row capacity that gives the fewest batch tokens,
`best_rows`) cannot fill its last row: on the demo fine-tuning mix it left 5.7% padding where
packing the buffer leaves under 1% (bench/packing.py). The model is then called with
`position_ids` and without `attention_mask`: transformers (masking_utils,
`find_packed_sequence_indices`) reads the restarts in position_ids and builds a block-diagonal
causal mask, for sdpa, eager and flex attention alike, so no attention kernel of ours is needed.
Only without a KV cache (`use_cache=False`, as training calls it): with one, transformers does
not look for packing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

from lmmsn.llm.prompts import IGNORE_INDEX, Example


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: indices of `lengths` grouped into rows of at most `capacity` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"example of {n} tokens does not fit a packed row of {capacity}")
        j = next((r for r, free in enumerate(room) if free >= n), None)
        if j is None:
            rows.append([i])
            room.append(capacity - n)
        else:
            rows[j].append(i)
            room[j] -= n
    return rows


def best_rows(lengths: Sequence[int], capacity: int, multiple: int = 8) -> tuple[list[list[int]], int]:
    """The packing (rows, row length) with the fewest batch tokens over row capacities up to `capacity`.

    A bucketed batch holds examples of similar length, which pack badly into one fixed
    capacity (three of 100 tokens leave 20 of 320 empty, and the longest row sets the
    length of all); trying every capacity from the longest example up to `capacity`
    (in steps of `multiple`) finds e.g. two per row of 200.
    """
    longest = max(lengths)
    best: tuple[int, list[list[int]], int] | None = None
    start = -(-longest // multiple) * multiple
    for cap in [*range(start, capacity + 1, multiple), capacity] if start <= capacity else [capacity]:
        rows = pack_rows(lengths, cap)
        used = max(sum(lengths[i] for i in row) for row in rows)
        length = -(-used // multiple) * multiple
        if best is None or len(rows) * length < best[0]:
            best = (len(rows) * length, rows, length)
    assert best is not None
    return best[1], best[2]


def collate_packed(examples: Sequence[Example], pad_id: int, capacity: int,
                   pad_to_multiple_of: int = 8) -> dict[str, torch.Tensor]:
    """The same examples packed into as few rows of `capacity` tokens as fit (one batch on its own).

    Returns input_ids, labels [R, L], position_ids [R, L] (restarting at 0 for every example
    and for the padding at a row's end) and attention_mask [R, L] (1 on real tokens: counts
    only; the model is called without it, so transformers builds its packed-sequence mask
    from position_ids and attention never crosses examples). No label crosses examples either:
    an example's first token (the tokenizer's <s>) is never a target.
    """
    rows, length = best_rows([len(e) for e in examples], capacity, pad_to_multiple_of)
    return collate_rows([[examples[i] for i in row] for row in rows], pad_id, length)


def collate_rows(rows: Sequence[Sequence[Example]], pad_id: int, length: int) -> dict[str, torch.Tensor]:
    """Rows of examples laid end to end into [R, length] tensors (`collate_packed`'s layout)."""
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)  # [R, L]
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)  # [R, L]
    positions = torch.zeros((len(rows), length), dtype=torch.long)  # [R, L]
    mask = torch.zeros((len(rows), length), dtype=torch.long)  # [R, L]
    for r, row in enumerate(rows):
        at = 0
        for e in row:
            n = len(e)
            if at + n > length:
                raise ValueError(f"a packed row of {at + n} tokens does not fit length {length}")
            if n and int(e.labels[0]) != IGNORE_INDEX:
                raise ValueError("packing needs examples whose first token is not a target (the tokenizer's <s>)")
            input_ids[r, at : at + n] = e.input_ids
            labels[r, at : at + n] = e.labels
            positions[r, at : at + n] = torch.arange(n)
            mask[r, at : at + n] = 1
            at += n
        positions[r, at:] = torch.arange(length - at)  # the padding: a sequence of its own
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels, "position_ids": positions}


def deal_rows(lengths: Sequence[int], num_batches: int, capacity: int) -> list[list[list[int]]] | None:
    """A buffer's examples as `num_batches` batches of packed rows (indices), or None if too few rows.

    First-fit decreasing over the whole buffer at `capacity`; the rows, longest first, are cut
    into `num_batches` runs of consecutive rows (sizes differing by at most one, the extra
    rows going to the runs of the shortest rows), so rows of similar length share a batch and
    the batch tensors pad little. None when the buffer packs into fewer rows than batches.
    """
    rows = pack_rows(lengths, capacity)
    if len(rows) < num_batches:
        return None
    rows.sort(key=lambda row: -sum(lengths[i] for i in row))
    base, extra = divmod(len(rows), num_batches)
    sizes = [base + (b >= num_batches - extra) for b in range(num_batches)]
    out, at = [], 0
    for size in sizes:
        out.append(rows[at : at + size])
        at += size
    return out


def packed_batches(buffers: Iterator[list[Example]], batch_size: int, rng: random.Random, pad_id: int,
                   capacity: int, pad_to_multiple_of: int = 8) -> Iterator[dict[str, torch.Tensor]]:
    """Bucketing's buffers (`lmmsn.llm.data.length_buffers`), each packed as a whole (module docstring).

    Per buffer there are ceil(examples / batch_size) batches, as without packing, in an order
    shuffled by `rng` (consumed exactly as `bucket_batches` consumes it). A buffer with fewer
    packed rows than batches (very short examples) falls back to packing each sorted batch on
    its own.
    """
    for buffer in buffers:
        lengths = [len(e) for e in buffer]
        num_batches = -(-len(buffer) // batch_size)
        dealt = deal_rows(lengths, num_batches, capacity)
        batches: list[dict[str, torch.Tensor]]
        if dealt is None:
            order = sorted(range(len(buffer)), key=lambda i: lengths[i])
            batches = [collate_packed([buffer[i] for i in order[b : b + batch_size]], pad_id, capacity, pad_to_multiple_of)
                       for b in range(0, len(order), batch_size)]
        else:
            batches = []
            for rows in dealt:
                used = max(sum(lengths[i] for i in row) for row in rows)
                length = -(-used // pad_to_multiple_of) * pad_to_multiple_of
                batches.append(collate_rows([[buffer[i] for i in row] for row in rows], pad_id, length))
        rng.shuffle(batches)
        yield from batches
