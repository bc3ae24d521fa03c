"""The reports' sections, figures and the paper's published values.

Each ``*_sections`` module returns :class:`~fapm_jax.reporting.markdown.Section` values (a
heading, its markdown and the tables, figures and arrays it names); nothing here writes a
file: the command line (:mod:`fapm_jax.cli.output`) does.
"""
