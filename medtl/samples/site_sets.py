"""A synthetic multi-site 2D set: one task (nodule present), three hospitals whose scanners differ.

Every site uses the same anatomy generator and the same label rule; what differs is
what scanners and protocols change: the detector's intensity curve, the noise level,
the sharpness (blur, i.e. effective resolution), the field of view (how much of the
chest fills the image) and the header's equipment fields. Site C is small (few
labelled patients), as a new hospital usually is. Never real patients; deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..plumbing.atomic import write_csv
from .radiographs import make_radiograph, to_stored
from .sample_sets import write_mask_2d
from .synthetic import write_radiograph


@dataclass(frozen=True)
class SiteStyle:
    """How one site's scanner renders the same density."""

    name: str
    gamma: float  # intensity curve: density ** gamma
    noise: float  # SD of additive noise (density units)
    blur: float  # Gaussian blur SD in pixels (lower effective resolution)
    zoom: float  # > 1: tighter field of view (the chest fills more of the image); < 1: wider
    equipment: tuple[tuple[str, str], ...]


SITE_STYLES = (
    SiteStyle("hospital_a", 1.0, 0.02, 0.0, 1.0,
              (("Manufacturer", "SynthVendor Alpha"), ("ManufacturerModelName", "AX-100"),
               ("InstitutionName", "Synthetic General Hospital"))),
    SiteStyle("hospital_b", 0.55, 0.05, 1.2, 1.2,
              (("Manufacturer", "SynthVendor Beta"), ("ManufacturerModelName", "BX-7"),
               ("InstitutionName", "Synthetic University Clinic"))),
    SiteStyle("hospital_c", 1.6, 0.035, 0.6, 0.85,
              (("Manufacturer", "SynthVendor Gamma"), ("ManufacturerModelName", "GX-2"),
               ("InstitutionName", "Synthetic District Hospital"))),
)


def render(density: np.ndarray, mask: np.ndarray, style: SiteStyle, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """The density and nodule mask as this site's scanner records them."""
    size = density.shape[0]
    if style.zoom != 1.0:
        density = _reframe(density, style.zoom, order=1)
        mask = _reframe(mask.astype(float), style.zoom, order=0).astype(np.uint8)
    if style.blur > 0:
        density = ndimage.gaussian_filter(density, style.blur)
    density = np.clip(density, 0, None) ** style.gamma
    density = density + rng.normal(0, style.noise, density.shape)
    assert density.shape == (size, size)
    return density, mask


def _reframe(image: np.ndarray, zoom: float, order: int) -> np.ndarray:
    """Zoom about the centre and crop/pad back to the original size (field of view)."""
    size = image.shape[0]
    zoomed = ndimage.zoom(image, zoom, order=order)
    if zoomed.shape[0] >= size:
        start = (zoomed.shape[0] - size) // 2
        return zoomed[start:start + size, start:start + size]
    out = np.full((size, size), float(image.min()))
    start = (size - zoomed.shape[0]) // 2
    out[start:start + zoomed.shape[0], start:start + zoomed.shape[1]] = zoomed
    return out


def write_site_set(root: str | Path, patients_per_site: tuple[int, ...], size: int = 128, seed: int = 0,
                   images_per_patient: int = 2, contrast: tuple[float, float] = (0.3, 0.5)) -> Path:
    """DICOM radiographs of every site under ``root/<site>/``, masks, and ``manifest.csv`` with a site column."""
    root = Path(root)
    rows = []
    for site_index, (style, n_patients) in enumerate(zip(SITE_STYLES, patients_per_site)):
        rng = np.random.default_rng([seed, site_index])
        for p in range(n_patients):
            patient_id = f"SYNTH-SITE{site_index}-{p:04d}"
            for i in range(images_per_patient):
                finding = bool(rng.random() < 0.5)
                image = make_radiograph(size, rng, finding, contrast=contrast)
                density, mask = render(image.density, image.mask, style, rng)
                name = f"{style.name}/p{p:04d}_{i}"
                spacing = (0.2 * 1024 / size / style.zoom,) * 2
                write_radiograph(root / "images" / f"{name}.dcm", to_stored(density, False), pixel_spacing=spacing,
                                 modality="DX", patient_id=patient_id, seed=seed * 100000 + site_index * 1000 + p,
                                 instance=i + 1, equipment=dict(style.equipment), bits_stored=12)
                (root / "masks" / style.name).mkdir(parents=True, exist_ok=True)
                write_mask_2d(root / "masks" / f"{name}.nii.gz", mask, spacing)
                rows.append({"image": f"images/{name}.dcm", "label": int(finding), "mask": f"masks/{name}.nii.gz",
                             "patient_id": patient_id, "site": style.name})
    write_csv(root / "manifest.csv", ["image", "label", "mask", "patient_id", "site"], rows)
    return root
