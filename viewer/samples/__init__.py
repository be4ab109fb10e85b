"""Sample data, generated deterministically or read from files that installed packages ship; no
downloads. One module per kind of data:

* ``phantom``: the CT phantom (one label table; a fixed reference patient or one patient per seed);
* ``brain``: the MNI152 template from nilearn's files; ``frog``: pyvista's frog tissues, MR-like;
  ``mr``: the smooth fields and scanner artefacts those two share;
* ``hemispheres``: a case cut into its left and right parts;
* ``rendering``: the cached globe capture of the neural-rendering demo;
* ``demo``: the default demo scene's objects (phantom, textured globe, point cloud);
* ``registry``: the named demo scenes and the ``demo:NAME/INDEX`` sources scene files use;
* ``datasets``: the training/benchmark data sets gathered under one name.

Nothing here imports the command line, the window, the interactive views or the job runner.
"""
