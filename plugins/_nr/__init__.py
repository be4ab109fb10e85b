"""Machinery the neural renderers share (``plugins/texture``, ``plugins/dnr``): settings and their
bounds (:mod:`.config`), the plugin object (:mod:`.plugin`), training data from rasterized uv maps
(:mod:`.data`), texture / SH / U-Net modules (:mod:`.networks`), the fitted model and its
rendering (:mod:`.model`), checkpoints (:mod:`.checkpoint`) and the fitting loop (:mod:`.fit`).
Only :mod:`.config` and :mod:`.plugin` are light; the rest imports torch."""
