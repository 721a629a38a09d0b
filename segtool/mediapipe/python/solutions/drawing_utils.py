"""``mp.solutions.drawing_utils``: MediaPipe's drawing helpers, so the legacy solution's samples run.

MediaPipe's own selfie segmentation sample starts with ``mp_drawing = mp.solutions.drawing_utils``.
Here are its ``DrawingSpec``, colours, ``draw_landmarks``, ``draw_detection`` and ``draw_axis``,
drawing with OpenCV on a BGR uint8 image in place as MediaPipe's do. Landmarks and detections
are read by their fields (``landmark_list.landmark[i].x/.y/.visibility/.presence``;
``detection.location_data.relative_keypoints`` and ``.relative_bounding_box``): MediaPipe's
protobuf messages and any objects with those attributes work. segtool has no landmark tasks, so
``plot_landmarks`` (a matplotlib 3-D plot of them) is not here.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Optional, Tuple, Union

import numpy as np

WHITE_COLOR = (224, 224, 224)
BLACK_COLOR = (0, 0, 0)
RED_COLOR = (0, 0, 255)
GREEN_COLOR = (0, 128, 0)
BLUE_COLOR = (255, 0, 0)
_MIN_VISIBILITY = 0.5  # landmarks less visible (or present) than this are not drawn
_MIN_PRESENCE = 0.5
_RELATIVE_BOUNDING_BOX = 2  # LocationData.Format.RELATIVE_BOUNDING_BOX
NOT_BGR = "Input image must contain three channel bgr data."


@dataclasses.dataclass
class DrawingSpec:
    """Colour (BGR), line thickness and circle radius of what is drawn, in pixels."""

    color: Tuple[int, int, int] = WHITE_COLOR
    thickness: int = 2
    circle_radius: int = 2


def _normalized_to_pixel_coordinates(normalized_x: float, normalized_y: float, image_width: int,
                                     image_height: int) -> Optional[Tuple[int, int]]:
    """A point in [0, 1] x [0, 1] as a pixel (x, y); None when it lies outside the image."""
    def inside(value: float) -> bool:
        return (value > 0 or math.isclose(0, value)) and (value < 1 or math.isclose(1, value))

    if not (inside(normalized_x) and inside(normalized_y)):
        return None
    return (min(math.floor(normalized_x * image_width), image_width - 1),
            min(math.floor(normalized_y * image_height), image_height - 1))


def draw_landmarks(image: np.ndarray, landmark_list, connections=None,
                   landmark_drawing_spec: Optional[Union[DrawingSpec, Mapping]] = DrawingSpec(color=RED_COLOR),
                   connection_drawing_spec: Union[DrawingSpec, Mapping] = DrawingSpec(),
                   is_drawing_landmarks: bool = True) -> None:
    """Draw normalized landmarks and the lines between ``connections`` (index pairs) on ``image``.

    Either spec may be one DrawingSpec or a mapping (landmark index, or connection pair, to its
    spec); ``None`` draws nothing of that kind. Landmarks less than half visible or present, and
    those outside the image, are left out, with their connections.
    """
    import cv2

    if not landmark_list:
        return
    _require_bgr(image)
    rows, cols = image.shape[:2]
    landmarks = list(landmark_list.landmark)
    pixels = {}
    for index, landmark in enumerate(landmarks):
        if _hidden(landmark):
            continue
        point = _normalized_to_pixel_coordinates(landmark.x, landmark.y, cols, rows)
        if point:
            pixels[index] = point
    for connection in connections or ():
        start, end = connection[0], connection[1]
        if not (0 <= start < len(landmarks) and 0 <= end < len(landmarks)):
            raise ValueError(f"Landmark index is out of range. Invalid connection from landmark #{start} "
                             f"to landmark #{end}.")
        if start in pixels and end in pixels and connection_drawing_spec:
            spec = _spec_for(connection_drawing_spec, connection)
            cv2.line(image, pixels[start], pixels[end], spec.color, spec.thickness)
    if not (is_drawing_landmarks and landmark_drawing_spec):
        return
    for index, point in pixels.items():  # points over the lines
        spec = _spec_for(landmark_drawing_spec, index)
        border = max(spec.circle_radius + 1, int(spec.circle_radius * 1.2))
        cv2.circle(image, point, border, WHITE_COLOR, spec.thickness)
        cv2.circle(image, point, spec.circle_radius, spec.color, spec.thickness)


def draw_detection(image: np.ndarray, detection, keypoint_drawing_spec: DrawingSpec = DrawingSpec(color=RED_COLOR),
                   bbox_drawing_spec: DrawingSpec = DrawingSpec()) -> None:
    """Draw a detection's relative keypoints and bounding box on ``image``."""
    import cv2

    location = getattr(detection, "location_data", None)
    if not location:
        return
    _require_bgr(image)
    rows, cols = image.shape[:2]
    if getattr(location, "format", _RELATIVE_BOUNDING_BOX) != _RELATIVE_BOUNDING_BOX:
        raise ValueError("LocationData must be relative for this drawing funtion to work.")
    for keypoint in getattr(location, "relative_keypoints", ()):
        point = _normalized_to_pixel_coordinates(keypoint.x, keypoint.y, cols, rows)
        if point:
            cv2.circle(image, point, keypoint_drawing_spec.circle_radius, keypoint_drawing_spec.color,
                       keypoint_drawing_spec.thickness)
    box = _field(location, "relative_bounding_box")
    if box is None:
        return
    start = _normalized_to_pixel_coordinates(box.xmin, box.ymin, cols, rows)
    end = _normalized_to_pixel_coordinates(box.xmin + box.width, box.ymin + box.height, cols, rows)
    if start and end:
        cv2.rectangle(image, start, end, bbox_drawing_spec.color, bbox_drawing_spec.thickness)


def draw_axis(image: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
              focal_length: Tuple[float, float] = (1.0, 1.0), principal_point: Tuple[float, float] = (0.0, 0.0),
              axis_length: float = 0.1, axis_drawing_spec: DrawingSpec = DrawingSpec()) -> None:
    """Draw an object's x (red), y (green) and z (blue) axes, given its pose in camera coordinates."""
    import cv2

    _require_bgr(image)
    rows, cols = image.shape[:2]
    axes = np.float32([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    camera = np.matmul(rotation, axis_length * axes.T).T + translation
    x, y, z = camera[..., 0], camera[..., 1], camera[..., 2]
    (fx, fy), (px, py) = focal_length, principal_point
    x_ndc = np.clip(-fx * x / (z + 1e-5) + px, -1.0, 1.0)  # normalized device coordinates
    y_ndc = np.clip(-fy * y / (z + 1e-5) + py, -1.0, 1.0)
    xs = np.int32((1 + x_ndc) * 0.5 * cols)
    ys = np.int32((1 - y_ndc) * 0.5 * rows)
    origin = (int(xs[0]), int(ys[0]))
    for end, color in zip(range(1, 4), (RED_COLOR, GREEN_COLOR, BLUE_COLOR)):
        cv2.arrowedLine(image, origin, (int(xs[end]), int(ys[end])), color, axis_drawing_spec.thickness)


def _require_bgr(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(NOT_BGR)


def _spec_for(spec, key) -> DrawingSpec:
    return spec[key] if isinstance(spec, Mapping) else spec


def _field(message, name):
    """``message.name`` when set: protobuf messages say so with HasField, other objects by not None."""
    has_field = getattr(message, "HasField", None)
    if has_field is not None:
        try:
            return getattr(message, name) if has_field(name) else None
        except ValueError:  # not a field of this message
            return None
    return getattr(message, name, None)


def _hidden(landmark) -> bool:
    visibility, presence = _field(landmark, "visibility"), _field(landmark, "presence")
    return (visibility is not None and visibility < _MIN_VISIBILITY) or (
        presence is not None and presence < _MIN_PRESENCE)
