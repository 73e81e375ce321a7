"""Pure numeric core of wardtwin: windows, features, labels, NEWS2, the twin. No web or database imports."""
