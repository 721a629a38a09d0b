"""MediaPipe 0.10.21's own decoding of two JPEG files (colour 4:2:0, gray): tests/fixtures/mediapipe/jpeg_decode.npz.

Run in MediaPipe's venv: python scripts/make_mediapipe_jpeg_fixture.py tests/fixtures/mediapipe_compat.npz OUT.npz
"""
import sys, tempfile, os, numpy as np, cv2, mediapipe as mp
d = np.load(sys.argv[1])
out = {}
for name, pixels, flags in (("colour", cv2.cvtColor(d["cat"], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]),
                            ("gray", cv2.cvtColor(d["small_person"], cv2.COLOR_RGB2GRAY), [cv2.IMWRITE_JPEG_QUALITY, 85])):
    ok, data = cv2.imencode(".jpg", pixels, flags)
    path = os.path.join(tempfile.mkdtemp(), name + ".jpg")
    open(path, "wb").write(data.tobytes())
    out[name + "_jpeg"] = data
    out[name + "_mediapipe"] = mp.Image.create_from_file(path).numpy_view().copy()
    print(name, out[name + "_mediapipe"].shape)
np.savez_compressed(sys.argv[2], **out)
