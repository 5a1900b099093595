"""Shards as video2dataset 1.3 writes them, failed downloads included (spec/formats.md section 3).

Each input row is a sample ``{key}.json`` + ``{key}.txt`` (+ ``{key}.mp4`` when the download worked), members in
sorted order through webdataset's TarWriter (mode 0o444, owner bigdata); a failed row keeps its json (``status``
``failed_to_download``, the ``error_message``) and caption, without media. ``{shard}_stats.json`` counts them.
"""

import json
from pathlib import Path

import webdataset as wds


def write_video2dataset_shard(
    out: Path, shard_id: int, rows: list[tuple[bytes | None, str]], samples_per_shard: int = 1000
) -> Path:
    """Write ``out/{shard_id:05d}.tar`` and its ``_stats.json``; ``rows`` are (mp4 bytes or None, caption)."""
    width = len(str(samples_per_shard - 1)) + 5
    path = out / f"{shard_id:05d}.tar"
    statuses: dict[str, int] = {}
    with wds.TarWriter(str(path), encoder=False, mtime=0.0) as tar:
        for index, (video, caption) in enumerate(rows):
            key = f"{samples_per_shard * shard_id + index:0{width}d}"
            failed = video is None
            meta = {
                "videoid": 1053841541 + index,
                "page_idx": 27732,
                "page_dir": "027701_027750",
                "duration": "PT00H00M17S",
                "caption": caption,
                "url": f"https://ak.picdn.net/shutterstock/videos/{1053841541 + index}/preview/clip.mp4",
                "key": key,
                "status": "failed_to_download" if failed else "success",
                "error_message": "HTTP Error 404: Not Found" if failed else None,
                "yt_meta_dict": None,
            }
            message = meta["error_message"] or "success"
            statuses[message] = statuses.get(message, 0) + 1
            sample = {"__key__": key, "json": json.dumps(meta, indent=4).encode(), "txt": caption.encode()}
            if not failed:
                sample["mp4"] = video
            tar.write(sample)
    failures = sum(video is None for video, _ in rows)
    stats = {
        "count": len(rows),
        "successes": len(rows) - failures,
        "failed_to_download": failures,
        "failed_to_subsample": 0,
        "duration": 1.5,
        "bytes_downloaded": sum(len(video) for video, _ in rows if video is not None),
        "start_time": 1700000000.0,
        "end_time": 1700000001.5,
        "status_dict": statuses,
    }
    (out / f"{shard_id:05d}_stats.json").write_text(json.dumps(stats, indent=4))
    return path
