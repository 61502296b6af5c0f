"""Real media files for the tests, generated here: PNG (PIL), WAV (stdlib wave), MP4 (PyAV), speech
(espeak-ng)."""

from __future__ import annotations

import base64
import wave
from pathlib import Path

import numpy as np


def write_png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48), stripes: bool = False) -> Path:
    from PIL import Image

    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[:] = colour
    if stripes:
        arr[::4] = 255 - np.array(colour, dtype=np.uint8)
    Image.fromarray(arr).save(path, format="PNG")
    return path


def write_wav(path: Path, *, freq: float = 440.0, seconds: float = 1.5, amplitude: float = 0.5, rate: int = 16_000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (amplitude * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def write_mp4(
    path: Path, *, seconds: float = 2.0, fps: int = 10, size: tuple[int, int] = (64, 48), audio: bool = True,
    sound: np.ndarray | None = None,
) -> Path:
    """An MPEG-4 video whose red channel ramps with time (so frames are told apart), AAC audio: a
    330 Hz tone, or `sound` (16 kHz mono float samples in [-1, 1], e.g. speech) when given."""
    import av

    width, height = size
    n = int(seconds * fps)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        aus = out.add_stream("aac", rate=16_000) if audio else None
        if aus is not None:
            aus.layout = "mono"
        for i in range(n):
            img = np.zeros((height, width, 3), dtype=np.uint8)
            img[..., 0] = int(255 * i / n)
            img[:, : (i * width) // n, 1] = 200
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if aus is not None:
            if sound is not None:
                x = np.asarray(sound, dtype=np.float32).reshape(-1)
            else:
                t = np.arange(int(seconds * 16_000)) / 16_000
                x = (0.5 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
            for pts in range(0, x.size, 1024):
                frame = av.AudioFrame.from_ndarray(x[None, pts : pts + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts = 16_000, pts
                for packet in aus.encode(frame):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path


def speak(path: Path, text: str, *, words_per_minute: int = 150) -> Path:
    """`text` spoken by espeak-ng (Debian package `espeak-ng`) into a WAV file (22.05 kHz mono)."""
    import subprocess

    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)
    return path


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
