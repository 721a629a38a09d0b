"""``mediapipe.tasks.python.test``: ``test_utils``, which MediaPipe's published tests import."""
