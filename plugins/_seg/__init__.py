"""Machinery every 3D segmenter shares (no PLUGIN here): the plugin object (:mod:`.plugin`, light),
canonical orientation and intensity normalisation (:mod:`.preprocess`), training cases and patch
sampling (:mod:`.data`), the training loop (:mod:`.train`), sliding-window prediction
(:mod:`.infer`, :mod:`.predict`) and checkpoints (:mod:`.checkpoint`).

A segmenter plugin supplies its network builder and ``Config``; see ``plugins/unet3d``.
"""
