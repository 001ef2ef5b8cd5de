"""What the tests need besides the tests: local stand-ins for Cloud Storage and Vertex
AI, cached venvs (the training image's, TensorFlow 2.15's), and helpers that start a
command and kill it at the right moment."""
