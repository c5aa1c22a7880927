"""Drawing the simulated world with OpenCV: what the camera sees is in the pixels, not in printed captions.

A frame is a grid of 8 x 6 cells (`cell_px` each). Rows 0-1 are the wall (lamp at the left, door at the right),
rows 2-5 the floor. The room's two places (furniture) stand in row 3, at columns 0-2 and 5-7, and hold up to
three object units in the cells above them. People stand in rows 4-5 in three slots; each wears a shirt of
their own colour with their id on it; sitting, waving, walking and carrying look different. Objects fill one
cell each, so they line up with the vision encoder's merged 32-px patches at the default cell size.
"""

from __future__ import annotations

import cv2
import numpy as np

from taskmem_nodes.clips import Detection
from taskmem_nodes.sim.world import COLOURS, Person, RoomSpec, WorldState

GRID_COLUMNS, GRID_ROWS = 8, 6
PLACE_COLUMNS = (0, 5)  # first column of each place's three cells
PERSON_COLUMNS = (1.5, 4.0, 6.5)  # slot centres, in cells
SHIRT_HALF_WIDTH = 0.38  # in cells
UNITS_PER_PLACE = 3  # object units drawn on a place, one cell each
FURNITURE = {  # place kind -> RGB
    "table": (150, 95, 45), "counter": (205, 205, 210), "shelf": (110, 70, 35), "bench": (90, 120, 60),
    "desk": (60, 60, 70), "cabinet": (185, 150, 110), "sofa": (120, 40, 60), "cupboard": (80, 110, 150),
}
DOOR_CLOSED, DOOR_OPEN, OUTLINE = (125, 75, 30), (20, 20, 20), (20, 20, 20)


def frame_size(cell_px: int) -> tuple[int, int]:
    """(width, height) of a frame."""
    return GRID_COLUMNS * cell_px, GRID_ROWS * cell_px


def place_units(state: WorldState, room: str, place: str) -> list[tuple[str, str]]:
    """(colour, kind) of the object units drawn on `place` of `room`, left to right (cell column + k)."""
    units = [(o.colour, o.kind) for o in sorted(state.objects_at(f"{room} {place}"), key=lambda o: (o.colour, o.kind))
             for _ in range(o.count)]
    return units[:UNITS_PER_PLACE]


def shirt_columns(slot: int) -> list[int]:
    """The cell columns a shirt in person slot `slot` covers (rows 4-5), left to right."""
    centre = PERSON_COLUMNS[slot]
    return sorted({int(centre - SHIRT_HALF_WIDTH), int(centre + SHIRT_HALF_WIDTH - 1e-9)})


def render_frame(state: WorldState, room: RoomSpec, cell_px: int = 32) -> np.ndarray:
    """The camera's view of `room` in `state`: an (H, W, 3) uint8 RGB image."""
    width, height = frame_size(cell_px)
    image = np.empty((height, width, 3), np.uint8)
    image[: 2 * cell_px] = room.wall
    image[2 * cell_px:] = room.floor
    room_state = state.rooms[room.name]
    c = cell_px
    # door (right) and lamp (left) on the wall
    cv2.rectangle(image, (7 * c + c // 8, c // 4), (8 * c - c // 8, 2 * c - 1),
                  DOOR_OPEN if room_state.door_open else DOOR_CLOSED, -1)
    cv2.circle(image, (c // 2, c // 2), c // 4, (255, 240, 120) if room_state.lights_on else (90, 90, 90), -1)
    for column, place in zip(PLACE_COLUMNS, room.places):
        _draw_furniture(image, column, place, c)
        for slot, (colour, kind) in enumerate(place_units(state, room.name, place)):
            draw_object(image, ((column + slot) * c, 2 * c), c, colour, kind)
    for person in state.in_room(room.name):
        _draw_person(image, person, c)
    if not room_state.lights_on:
        image = (image * 0.45).astype(np.uint8)
    return image


def person_detections(state: WorldState, room: str) -> tuple[Detection, ...]:
    """What a person tracker reports for a frame of `room`: each person drawn, with their id and shirt box (the
    simulator's ground truth, as Gazebo and Isaac Sim give it)."""
    return tuple(Detection(f"person_{p.pid}", PERSON_COLUMNS[p.slot] / GRID_COLUMNS, 4.95 / GRID_ROWS,
                           2 * SHIRT_HALF_WIDTH / GRID_COLUMNS, 1.0 / GRID_ROWS) for p in state.in_room(room))


def _draw_furniture(image: np.ndarray, column: int, place: str, c: int) -> None:
    colour = FURNITURE[place]
    x0, x1, y0 = column * c + 2, (column + 3) * c - 3, 3 * c
    cv2.rectangle(image, (x0, y0), (x1, y0 + c // 3), colour, -1)  # top
    if place in ("sofa", "bench"):
        cv2.rectangle(image, (x0, y0 + c // 3), (x1, y0 + c - 2), colour, -1)
    elif place in ("shelf", "cabinet", "cupboard", "counter"):
        cv2.rectangle(image, (x0 + 2, y0 + c // 3), (x1 - 2, y0 + c - 2), tuple(v // 2 + 40 for v in colour), -1)
    else:  # table, desk: legs
        for x in (x0 + 2, x1 - c // 6):
            cv2.rectangle(image, (x, y0 + c // 3), (x + c // 8, y0 + c - 2), colour, -1)


def draw_object(image: np.ndarray, origin: tuple[int, int], size: int, colour: str, kind: str) -> None:
    """One object unit filling the `size`-px square at `origin` (x, y), drawn by kind."""
    rgb = COLOURS[colour]
    x, y = origin

    def box(fx0, fy0, fx1, fy1, fill=rgb):
        cv2.rectangle(image, (x + int(fx0 * size), y + int(fy0 * size)), (x + int(fx1 * size), y + int(fy1 * size)),
                      fill, -1)
        cv2.rectangle(image, (x + int(fx0 * size), y + int(fy0 * size)), (x + int(fx1 * size), y + int(fy1 * size)),
                      OUTLINE, 1)

    if kind == "mug":
        cv2.circle(image, (x + int(0.72 * size), y + int(0.6 * size)), max(2, size // 6), rgb, max(1, size // 12))
        box(0.18, 0.35, 0.68, 0.92)
    elif kind == "box":
        box(0.12, 0.2, 0.88, 0.95)
    elif kind == "ball":
        centre, radius = (x + size // 2, y + int(0.6 * size)), int(0.34 * size)
        cv2.circle(image, centre, radius, rgb, -1)
        cv2.circle(image, centre, radius, OUTLINE, 1)
    elif kind == "book":
        box(0.3, 0.08, 0.7, 0.95)
        cv2.line(image, (x + int(0.62 * size), y + int(0.12 * size)), (x + int(0.62 * size), y + int(0.9 * size)),
                 (250, 250, 250), max(1, size // 16))
    elif kind == "bottle":
        box(0.42, 0.08, 0.58, 0.35)
        box(0.32, 0.35, 0.68, 0.95)
    else:
        raise ValueError(f"cannot draw object kind {kind!r}")


def _draw_person(image: np.ndarray, person: Person, c: int) -> None:
    cx = int(PERSON_COLUMNS[person.slot] * c)
    drop = int(0.3 * c) if person.activity == "sitting" and person.carrying is None else 0
    shirt = COLOURS[person.shirt]
    if drop:  # a chair behind a sitting person
        cv2.rectangle(image, (cx - int(0.5 * c), int(4.6 * c)), (cx + int(0.5 * c), 6 * c - 2), (100, 100, 100), -1)
    head_y, top, bottom = int(4.2 * c) + drop, int(4.45 * c) + drop, int(5.45 * c) + drop
    skin = (230, 190, 150)
    cv2.circle(image, (cx, head_y), int(0.2 * c), skin, -1)
    half = int(SHIRT_HALF_WIDTH * c)
    cv2.rectangle(image, (cx - half, top), (cx + half, bottom), shirt, -1)
    cv2.rectangle(image, (cx - half, top), (cx + half, bottom), OUTLINE, 1)
    ink = (0, 0, 0) if sum(shirt) > 380 else (255, 255, 255)
    scale = c / 40
    (tw, th), _ = cv2.getTextSize(str(person.pid), cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, c // 14))
    cv2.putText(image, str(person.pid), (cx - tw // 2, (top + bottom + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, ink,
                max(1, c // 14), cv2.LINE_AA)
    leg = max(2, c // 10)
    if drop:  # legs forward
        cv2.line(image, (cx, bottom), (cx + int(0.5 * c), bottom), (40, 40, 90), leg)
    elif person.activity == "walking" or person.carrying:
        cv2.line(image, (cx, bottom), (cx - int(0.25 * c), 6 * c - 1), (40, 40, 90), leg)
        cv2.line(image, (cx, bottom), (cx + int(0.25 * c), 6 * c - 1), (40, 40, 90), leg)
    else:
        cv2.line(image, (cx - int(0.15 * c), bottom), (cx - int(0.15 * c), 6 * c - 1), (40, 40, 90), leg)
        cv2.line(image, (cx + int(0.15 * c), bottom), (cx + int(0.15 * c), 6 * c - 1), (40, 40, 90), leg)
    if person.activity == "waving" and person.carrying is None:
        cv2.line(image, (cx + half, top + 2), (cx + int(0.6 * c), int(3.75 * c) + drop), skin, leg)
    if person.carrying:
        half = c // 2
        draw_object(image, (cx + int(0.3 * c), top + int(0.1 * c)), half, *person.carrying)
