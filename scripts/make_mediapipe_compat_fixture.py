#!/usr/bin/env python
"""Record MediaPipe 0.10.21's outputs for tests/test_mediapipe_compat.py and tests/test_selfie_solution.py.

Run where mediapipe==0.10.21 is installed (numpy<2), from a folder holding astronaut.png and
chelsea.png (scikit-image's skimage/data), with ../shared/models beside the project:

    python scripts/make_mediapipe_compat_fixture.py tests/fixtures/mediapipe_compat.npz

It stores its two small inputs with the outputs, so the tests need neither OpenCV's resize nor
the original photos: the legacy solution's masks for both model_selection values on a 100x150
photo (smaller than the models' inputs: the graph's black border shows), and Tasks' category
masks and one confidence channel (float16) of the selfie and DeepLab models on a 150x226 photo
at rotations 0, 90 and 270, in MediaPipe's layout.
"""
import numpy as np, mediapipe as mp, cv2, sys
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.core.base_options import BaseOptions
M = str(__import__('pathlib').Path(__file__).resolve().parents[2] / 'shared' / 'models') + '/'
rgb = lambda f: cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB)
small_person = cv2.resize(rgb('astronaut.png'), (150, 100), interpolation=cv2.INTER_AREA)   # 100x150: upscaled into 256
cat = cv2.resize(rgb('chelsea.png'), (226, 150), interpolation=cv2.INTER_AREA)             # 150x226, non-square
out = {'small_person': small_person, 'cat': cat, 'mediapipe_version': np.array(mp.__version__)}
for sel in (0, 1):
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=sel) as ss:
        out[f'legacy_{sel}'] = ss.process(small_person).segmentation_mask.copy()
for model, file, channel in [('selfie', 'selfie_segmenter.tflite', 0), ('deeplab', 'deeplab_v3.tflite', 8)]:
    opts = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=M + file), output_category_mask=True)
    with vision.ImageSegmenter.create_from_options(opts) as s:
        for name, image in (('cat', cat),):
            for rot in (0, 90, 270):
                r = s.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)),
                              vision.ImageProcessingOptions(rotation_degrees=rot))
                out[f'{model}_{name}_rot{rot}_category'] = r.category_mask.numpy_view().copy()
                # float16 keeps the file small: its rounding is under 2.5e-4 on 0..1
                out[f'{model}_{name}_rot{rot}_confidence'] = r.confidence_masks[channel].numpy_view().astype(np.float16)
                out[f'{model}_{name}_masks'] = np.array(len(r.confidence_masks))
np.savez_compressed(sys.argv[1], **out)
