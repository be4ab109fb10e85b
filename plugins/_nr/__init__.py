"""Machinery the neural renderers share (``plugins/texture``, ``plugins/dnr``): training data from
rasterized uv maps (:mod:`.data`), texture / SH / U-Net modules (:mod:`.networks`), the fitted
model and its rendering (:mod:`.model`), checkpoints (:mod:`.checkpoint`), the fitting loop
(:mod:`.fit`), image metrics (:mod:`.metrics`) and the plugin object (:mod:`.plugin`)."""
