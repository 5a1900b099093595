"""``clover-pl embed`` and ``clover-pl search``: index your own videos with a checkpoint, search them by text."""

from __future__ import annotations

import argparse
import os
import sys

EMBED_HELP = """Embed a folder (or list file) of videos, and/or a file of texts, into an index file.

  clover-pl embed --ckpt outputs/quickstart/checkpoints/last.ckpt --videos my_videos/ --out my_videos.pt
  clover-pl embed --ckpt model.ckpt --videos list.txt --texts captions.txt --out index.pt

Videos are read as the checkpoint's evaluation read them (frames at segment centres, centre crop); a video that
cannot be read is skipped and listed. The index is readable with torch.load(path, weights_only=True).
"""

SEARCH_HELP = """Find the videos of an index that best match a text; print them and draw a contact sheet.

  clover-pl search --index my_videos.pt --query "a red circle moving left" -k 5
  clover-pl search --index index.pt --query-id 12 -k 10 --sheet hits.png    # a text stored in the index
"""


def _embed_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clover-pl embed", description=EMBED_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="a clover-pl checkpoint (pretraining or retrieval)")
    parser.add_argument("--videos", help="a folder of videos (searched recursively) or a file listing them")
    parser.add_argument("--texts", help="a file with one text per line (or id<TAB>text)")
    parser.add_argument("--out", required=True, help="the index file to write (.pt)")
    parser.add_argument("--tokenizer", help="BERT directory or vocab.txt (default: the checkpoint's vocabulary)")
    parser.add_argument("--frames", type=int, help="frames per clip (default: the checkpoint's evaluation setting)")
    parser.add_argument("--image-size", type=int, help="crop side in pixels (default: the checkpoint's)")
    parser.add_argument("--max-text-length", type=int, help="tokens per text (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--workers", type=int, default=0, help="processes decoding videos (default 0: this one)")
    return parser


def _search_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clover-pl search", description=SEARCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", required=True, help="an index written by clover-pl embed")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", help="the text to search for")
    query.add_argument("--query-id", help="the id of a text stored in the index")
    parser.add_argument("-k", type=int, default=5, help="how many videos to return (default 5)")
    parser.add_argument("--sheet", help="contact sheet PNG (default: <index>.search.png)")
    parser.add_argument("--ckpt", help="the model that embeds --query (default: the index's checkpoint)")
    parser.add_argument("--tokenizer", help="BERT directory or vocab.txt (default: the checkpoint's vocabulary)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    return parser


def embed(argv: list[str]) -> int:
    """``clover-pl embed``: write an index; returns the exit status."""
    from clover_pl.inference.index import build_index, list_videos, read_texts, save_index
    from clover_pl.inference.loading import Embedder

    args = _embed_parser().parse_args(argv)
    if args.videos is None and args.texts is None:
        raise ValueError("give --videos, --texts or both")
    videos = list_videos(args.videos) if args.videos else []
    texts = read_texts(args.texts) if args.texts else []
    embedder = Embedder.from_checkpoint(
        args.ckpt,
        tokenizer=args.tokenizer,
        device=args.device,
        frames=args.frames,
        image_size=args.image_size,
        max_text_length=args.max_text_length,
    )

    def progress(done: int, total: int) -> None:
        print(f"\rembedding videos: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    index = build_index(
        embedder, videos, texts, args.batch_size, progress if videos else None, workers=max(0, args.workers)
    )
    index["checkpoint"] = os.path.abspath(args.ckpt)
    save_index(index, args.out)
    skipped = index["skipped"]
    for entry in skipped[:20]:
        print(f"skipped {entry['path']}: {entry['reason']}")
    if len(skipped) > 20:
        print(f"... and {len(skipped) - 20} more skipped videos (all listed in the index's 'skipped')")
    print(
        f"indexed {len(index['video_ids'])} videos ({len(skipped)} skipped as unreadable) and "
        f"{len(index['text_ids'])} texts into {args.out}"
    )
    return 0


def search_command(argv: list[str]) -> int:
    """``clover-pl search``: print the top-k videos for a text and write their contact sheet."""
    from clover_pl.inference.contact_sheet import write_contact_sheet
    from clover_pl.inference.index import load_index, search
    from clover_pl.inference.loading import Embedder

    args = _search_parser().parse_args(argv)
    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    index = load_index(args.index)
    if args.query_id is not None:
        if args.query_id not in index["text_ids"]:
            raise ValueError(f"--query-id {args.query_id}: no text with this id in {args.index}")
        position = index["text_ids"].index(args.query_id)
        query_text, query = index["texts"][position], index["text"][position]
    else:
        checkpoint = args.ckpt or index.get("checkpoint")
        if not checkpoint:
            raise ValueError(f"{args.index} does not name its checkpoint: give --ckpt")
        settings = {name: index["settings"][name] for name in ("frames", "image_size", "max_text_length")}
        embedder = Embedder.from_checkpoint(checkpoint, tokenizer=args.tokenizer, device=args.device, **settings)
        query_text, query = args.query, embedder.embed_texts([args.query])[0]
    hits = search(index, query, args.k)
    print(f"top {len(hits)} of {len(index['video_ids'])} videos for: {query_text}")
    for hit in hits:
        print(f"{hit.rank:>3}  {hit.score:+.4f}  {hit.id}  {hit.path}")
    sheet = args.sheet or os.path.splitext(args.index)[0] + ".search.png"
    write_contact_sheet(hits, query_text, sheet)
    print(f"contact sheet: {sheet}")
    return 0


def run(command: str, argv: list[str]) -> int:
    """Run ``embed`` or ``search`` with its arguments; a user error is one line on stderr and exit status 2."""
    try:
        return embed(argv) if command == "embed" else search_command(argv)
    except (FileNotFoundError, ValueError) as error:
        print(f"clover-pl {command}: {error}", file=sys.stderr)
        return 2
