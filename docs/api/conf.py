"""Sphinx configuration of reversenet's API reference (make docs; CI builds it with -W)."""

project = "reversenet"
extensions = ["sphinx.ext.autodoc", "numpydoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signature shows the hints; numpydoc's sections say the rest
numpydoc_show_class_members = False  # members are listed by autodoc's :members:
numpydoc_class_members_toctree = False
# Every documented object: a docstring, all its parameters and none that it lacks, a
# Returns (or Yields) section when it returns something.
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "RT01", "YD01"}
html_theme = "alabaster"
exclude_patterns = ["_build"]
