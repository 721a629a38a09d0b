"""``mediapipe.python._framework_bindings``: the module paths MediaPipe 0.10.21's tests import
``Image`` (``image``) and ``ImageFormat`` (``image_frame``) from; plain Python here."""
