"""The reversed network itself: the traced graph, the reverse rules, the variants, the
selectors, the recording (and its forward pass), the reverse pass and the receptive-field
windows it runs on. Imports torch (and PyYAML) only."""
