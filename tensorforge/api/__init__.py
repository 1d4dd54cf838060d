"""The public functions behind the command-line tools that have no single home in a lower layer.

Each function here is what one ``tensorforge`` command does, minus the parsing and printing:
``run``, ``info``, ``calibrate``, ``sensitivity``, ``accuracy``, ``serve``, ``loadtest``. They
compose the job layers (``serve``, ``loadgen``, ``bench``, ``report``) and what lies below,
so this package sits between ``cli`` and those layers: ``cli`` may import it, it imports
nothing above itself. Users reach the functions as ``tensorforge.<name>`` (see
``tensorforge/__init__.py``), not through this package.
"""
