"""Reports: the serialized and drawn forms of results (JSON, CSV, table rows, plots).

* :mod:`.bench` — the JSON/CSV schema and table of ``tensorforge.bench`` results;
* :mod:`.units` — counts and byte sizes as people read them;
* :mod:`.pareto`, :mod:`.profile_chart` — plots of the optimize search and of a layer profile.
* :mod:`.html` — one self-contained HTML page from result JSON files (``tensorforge report``): kinds told
  apart by :mod:`.loaders`, sections in :mod:`.sections`, inline-SVG plots in :mod:`.plots`, the
  whitepaper's published figures in :mod:`.seed_figures`.

It sits with the other job layers (below ``cli``); it reads results, it runs nothing.
"""
