"""The application layer: the `tinybert-edge` command line (`cli`), the end-to-end `pipeline`, its `report`, and
bundle writing (`bundle`). It alone may import every layer below it (core, converters, benchmarks); nothing below
imports it. Users reach it through the package's facade (`tinybert_edge.pipeline`, `tinybert_edge.package`, ...)."""
