"""Loaders of published streaming-QA datasets into `BenchStream`s, reading annotations and local videos.

Each module has `load(annotations, videos, *, limit=None) -> list[BenchStream]`: `videomme`, `egolife`,
`egotempo`. Videos are opened lazily, when a stream's frames are iterated. Malformed files raise
`DatasetError` naming the file, the record and what is wrong.
"""
