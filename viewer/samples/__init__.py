"""Sample data, generated deterministically or read from files that installed packages ship: the demo scenes
(``demo``), the benchmark and test cases (``datasets``) and the ``demo:NAME`` sources scene files name (``registry``)."""
