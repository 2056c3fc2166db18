"""The reversed network itself: the traced graph, the reverse rules, the variants, the
selectors, the recording and the reverse pass. Imports torch (and PyYAML) only."""
