"""Method plugins (one package each) behind the contract in ``viewer/plugins.py``.

Empty until the segmentation and neural-rendering issues add their methods.
"""
