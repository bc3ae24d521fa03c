"""The ``fapm`` command: ``fapm run`` (train FAPM over the rolling windows and write its outputs),
``fapm reproduce`` (the paper pipeline, the GKX comparison suite and ``REPORT.md``) and
``fapm simulate`` (GKX's Monte Carlo study, Table A.1, with FAPM rows).

:mod:`.parser` holds the options and the dispatch; :mod:`.run`, :mod:`.reproduce` and
:mod:`.simulate` compose the library for each command; :mod:`.output` writes what the
reporting functions return.
"""

from .parser import build_parser as build_parser
from .parser import main as main
from .run import configs as configs
from .run import load_data as load_data
