"""``SampleRenderer``: one synthetic key photo (image, mask, instances, meta) per (index, run_seed).

Scene recipe (domain randomisation, Tobin et al. 2017; cut-paste, Dwibedi et al. 2017; copy-paste
with occlusion-updated masks, Ghiasi et al. 2021): background -> distractors under -> ring halves
under -> keys (cast + contact shadow each, from ONE scene light) -> ring halves over ->
distractors over -> blobs / fingers over keys -> illumination gradient x exposure -> camera chain.
Every random part draws from its own ``synth.seeding.child_rng(seed, stream)`` so switching a
family off leaves the rest of the sample unchanged.

A sample is sampled first and rendered second (as in Kubric): :meth:`SampleRenderer.sample_scene`
draws everything random into a :class:`synth.spec.Scene` -- ``_start_scene`` (seeds, background,
light and illumination, reflection env, look) -> :func:`synth.layout.sample_layout` ->
``_place_keys`` (each key built as a cut-out layer by its source, then placed by its layout kind)
-> ``_add_distractors`` / ``_add_rings`` / ``_add_occluders`` -> ``_sample_shadows`` -> the camera
chain's parameters; :meth:`SampleRenderer.render_scene` composites that scene without a random
draw -- ``_composite`` (back to front, each layer after its shadow) -> ``_finish`` (illumination,
camera chain, labels, and the meta the scene writes). Objects are built while sampling because an
object's appearance is drawn while it is rasterised, from its family's stream, and its placement
depends on the rasterised size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from backgrounds.cache import LRUCache

from .compose import Canvas, Layer, cast_shadow, matmul3, rect_to_quad, rgba_to_layer, warp_layer
from .config import SynthConfig
from .meta import jsonable
from .seeding import asset_bank_seed, child_rng, loguniform, pick, sample_seed, uniform
from . import functional as F
from .keys.render import PreparedEnv
from .keysources import blend_layer, make_keys, poisson_colour, relight_layer, sample_blend, sample_relight
from .layout import (PlacedKey, blade_frame, key_length_and_angle, place_cluster, place_crop, place_scatter,
                     sample_layout)
from .occluders import blob_layer, distractor_renderers, fallback_distractor, finger_layer, key_ring_layers
from .spec import Scene, sample_light, sample_shadow

__all__ = ["SampleRenderer", "jsonable"]

MIN_KEY_RENDER_PX = 24.0
#: a key shrunk below this factor by its warp is first area-resized (bilinear sampling at under
#: 0.7x skips source pixels and aliases); 0.7 < 1 / sqrt(2), the largest shrink an asset-bank size
#: bucket needs, so banked keys go through one warp (``synth.keys.bank.BUCKETS_PER_OCTAVE``)
PRE_SHRINK_BELOW = 0.7


def _any_bank(c: SynthConfig) -> bool:
    """Whether any asset bank (keys, distractors, procedural backgrounds) is on."""
    return c.asset_bank_size > 0 or c.distractor_bank_size > 0 or c.background_bank_size > 0


def sample_key_warp(rng: np.random.Generator, c: SynthConfig, w: int, h: int) -> dict:
    """The perspective jitter of one w x h px key image: ``perspective`` (corner jitter, fraction
    of the long side, uniform in ``perspective_range``), ``aspect`` (foreshortening factor, uniform
    in ``aspect_jitter_range``), ``corners`` (4 x [dx, dy] px offsets) and ``axis_rad`` (the
    foreshortening direction, uniform in [0, pi)), drawn in that order."""
    jit = uniform(rng, *c.perspective_range)
    asp = uniform(rng, *c.aspect_jitter_range)
    d = (rng.uniform(-jit, jit, (4, 2)) * max(h, w)).tolist()
    return {"perspective": jit, "aspect": asp, "corners": d, "axis_rad": math.radians(uniform(rng, 0, 180))}


def key_warp_matrix(w: int, h: int, s: float, warp: dict) -> tuple[list[list[float]], tuple[int, int]]:
    """3x3 homography (nested lists) taking a w x h px image to its jittered corners
    (:func:`sample_key_warp`), stretched by ``aspect`` along the foreshortening axis about the
    centre and scaled by ``s``, shifted into a box with a 1 px margin; and that box's (h, w) px."""
    ux, uy = math.cos(warp["axis_rad"]), math.sin(warp["axis_rad"])
    dst = []
    for (x, y), (ddx, ddy) in zip(((0, 0), (w, 0), (w, h), (0, h)), warp["corners"]):
        rx, ry = x - w / 2, y - h / 2
        t = (rx * ux + ry * uy) * (warp["aspect"] - 1)
        dst.append([(rx + t * ux + ddx) * s, (ry + t * uy + ddy) * s])
    mx, my = min(p[0] for p in dst) - 1, min(p[1] for p in dst) - 1
    dst = [[x - mx, y - my] for x, y in dst]
    box = (math.ceil(max(p[1] for p in dst)) + 2, math.ceil(max(p[0] for p in dst)) + 2)
    return rect_to_quad(w, h, dst), box


def pre_shrink(rgba: np.ndarray, label: np.ndarray | None, M: list, s: float) -> tuple:
    """Area-resize a key image (and its label alpha) by about ``s`` < 1 before its warp ``M``, so
    that the bilinear warp does not skip source pixels (aliasing); returns them with ``M``
    corrected to take the smaller image to the same place."""
    hc, wc = rgba.shape[:2]
    small = cv2.resize(rgba, (max(2, int(round(wc * s))), max(2, int(round(hc * s)))), interpolation=cv2.INTER_AREA)
    lab = None if label is None else cv2.resize(label, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    sx, sy = small.shape[1] / wc, small.shape[0] / hc
    return small, lab, [[r[0] / sx, r[1] / sy, r[2]] for r in M]  # == M @ diag(1 / sx, 1 / sy, 1)


class SampleRenderer:
    """Render samples per DESIGN.md's sample contract. Picklable; sources are built lazily.

    The renderer owns its caches: ``asset_cache`` (banked key and distractor geometry, budget
    ``asset_cache_mib``) here, decoded photos and banked textures in its background source. A
    pickled or deep-copied renderer (a worker process or thread) starts with empty caches of the
    same budgets; renderers share a cache only when given the same background source object.

    Args:
        config: SynthConfig (None = defaults).
        backgrounds: a ``BackgroundSource`` (None = ``make_backgrounds(config.backgrounds)``).
        keys: a key cut-out source with ``sample(rng, *, length_px, angle_deg, light_dir, env,
            shading)`` (``env``: the scene's ``synth.keys.render.PreparedEnv``), optionally
            ``sample_layers`` giving the metal-only label alpha; None = ``make_keys(config.key_source)``.
    """

    def __init__(self, config: SynthConfig | None = None, backgrounds=None, keys=None):
        self.config = config if config is not None else SynthConfig()
        if not isinstance(self.config, SynthConfig):
            raise TypeError(f"config must be a SynthConfig, got {type(self.config).__name__}")
        self._backgrounds = backgrounds
        self._keys = keys
        self._camera = None
        self._distract = None
        self.asset_cache = LRUCache(self.config.asset_cache_mib)

    def __getstate__(self):
        st = self.__dict__.copy()
        st["_camera"] = None
        st["_distract"] = None
        return st

    @property
    def index_block(self) -> int:
        """Consecutive indices that share an asset-bank generation (``asset_bank_refresh``; 1 with
        every bank off): a live stream deals whole blocks to its workers so their caches keep
        hitting (``train.stream.worker_index``)."""
        return self.config.asset_bank_refresh if _any_bank(self.config) else 1

    @property
    def backgrounds(self):
        if self._backgrounds is None:
            from backgrounds import make_backgrounds

            self._backgrounds = make_backgrounds(self.config.backgrounds)
        return self._backgrounds

    @property
    def keys(self):
        if self._keys is None:
            c = self.config
            self._keys = make_keys(c.key_source, c.key_kinds, c.key_materials)
        return self._keys

    @property
    def camera(self):
        if self._camera is None:
            from .camera import CameraChain

            self._camera = CameraChain(self.config)
        return self._camera

    # ------------------------------------------------------------------ pieces
    def _key_layer(self, rng, L, angle, light, env, S, bank_seed=None, shading=True):
        """Render one key of long side L px (any size: tiny keys are rendered larger and shrunk),
        perspective-jitter it; -> (Layer at x0=y0=0, hole_xy in layer px or None, meta).
        With ``bank_seed`` (and a source with ``sample_asset``) the key comes from the asset bank in
        canonical orientation and its rotation is folded into the same single warp."""
        c = self.config
        Lr = max(L, MIN_KEY_RENDER_PX)
        src = self.keys
        source_id = None
        if hasattr(src, "pick"):  # mixed sources: one draw per key
            source_id, src = src.pick(rng)
        A = None  # cut-out px -> nominal (rotated, render-size) frame
        if bank_seed is not None and hasattr(src, "sample_asset"):
            rgba, lab, km, A, (h, w) = src.sample_asset(rng, length_px=Lr, angle_deg=angle, light_dir=light, env=env,
                                                        shading=shading, bank_seed=bank_seed,
                                                        bank_size=c.asset_bank_size, cache=self.asset_cache)
        elif hasattr(src, "sample_layers"):
            rgba, lab, km = src.sample_layers(rng, length_px=Lr, angle_deg=angle, light_dir=light, env=env,
                                              shading=shading, max_upscale=c.cutout_max_upscale)
            if km.get("upscale_capped"):
                Lr = km["length_px"]  # the cut-out is drawn shorter than the layout asked
                L = min(L, Lr)
        else:
            rgba, km = src.sample(rng, length_px=Lr, angle_deg=angle, light_dir=light, env=env, shading=shading)
            lab = None
        if A is None:
            h, w = rgba.shape[:2]
        hole = km.get("hole_xy")
        # projective jitter (+ foreshortening + downscale for tiny keys) as one warp
        s = L / Lr
        warp = sample_key_warp(rng, c, w, h)
        M, (oh, ow) = key_warp_matrix(w, h, s, warp)
        if A is not None:
            M = matmul3(M, A.tolist())  # the 2x3 affine as a 3x3 projective
            s = s * math.hypot(A[0, 0], A[0, 1])
        if hole is not None:
            hx, hy = hole[0], hole[1]
            q = [r[0] * hx + r[1] * hy + r[2] for r in M]
            hole = [q[0] / q[2], q[1] / q[2]]
        if s < PRE_SHRINK_BELOW:  # strong shrink: pre-area-resize so the bilinear warp does not alias
            rgba, lab, M = pre_shrink(rgba, lab, M, s)
        layer = warp_layer(rgba_to_layer(rgba, lab), np.array(M, np.float64), (oh, ow))
        km = {k: v for k, v in km.items() if k not in ("render",)}
        km.update({"length_px": L, "render_length_px": Lr, "angle_deg": angle, "perspective": warp["perspective"],
                   "aspect": warp["aspect"]})
        if source_id is not None:
            km["source"] = self.keys.names[source_id]
        if km.get("kind") == "cutout":
            layer = self._cutout_look(layer, rng, light, km)
        return layer, hole, km

    def _cutout_look(self, layer, rng, light, km):
        """Mirror (half the time), re-light to the scene and edge-blend a photographed cut-out
        (synth.keysources); the label follows the mirror, never the blend."""
        c = self.config
        rgba = layer.rgba if layer.rgba is not None else np.dstack([layer.rgb, layer.alpha])
        label = layer.label
        km["flip"] = bool(rng.random() < 0.5)  # a mirrored key is still a key (left/right bittings)
        if km["flip"]:
            rgba = np.ascontiguousarray(rgba[:, ::-1])
            label = None if label is None else np.ascontiguousarray(label[:, ::-1])
        if c.cutout_relight:
            rp = sample_relight(rng, light, c.lighting_gradient_range[1])
            relight_layer(rgba, rp)
            km["relight"] = {k: v for k, v in rp.items() if k != "azimuth"}
        bp = sample_blend(rng, c.cutout_blend_weights)
        rgba, lab, pad = blend_layer(rgba, label, bp)
        km["blend"] = bp
        return Layer.from_rgba(rgba, layer.x0 - pad, layer.y0 - pad, lab)

    # ------------------------------------------------------------------ main
    def render(self, index: int, run_seed: int, debug: bool = False) -> dict:
        """Render sample ``index`` of run ``run_seed``.

        Returns:
            dict with ``image`` uint8 (S, S, 3) RGB, ``mask`` uint8 (S, S) {0,1} (255 on the ignore
            band if enabled), ``instances`` uint16 (S, S), ``meta`` (JSON-serialisable: seed, index,
            run_seed, every sampled parameter). With ``debug=True`` also ``key_alpha`` float32 (S, S):
            the keys' label coverage composited over each other but BEFORE any non-key occluder,
            and ``coverage``: the total visible key coverage after everything
            (mask == coverage >= 0.5, except keys dropped by ``min_visible_px``).
        """
        return self.render_scene(self.sample_scene(index, run_seed), debug)

    def sample_scene(self, index: int, run_seed: int) -> Scene:
        """Everything random about sample ``index`` of run ``run_seed``, as a :class:`synth.spec.Scene`:
        background, light, look, layout, the placed keys, distractors, rings and occluders, every
        layer's shadow and the camera's parameters. Each object is built here as a cut-out layer
        (its appearance is drawn while it is rasterised, from the object family's own stream);
        nothing is composited. :meth:`render_scene` turns the scene into the sample."""
        sc = self._start_scene(index, run_seed)
        r_lay = child_rng(sc.seed, "layout")
        sc.layout = sample_layout(r_lay, self.config, sc.size)
        self._place_keys(sc, r_lay, child_rng(sc.seed, "keys"))
        if self.config.occluders:
            self._add_distractors(sc, child_rng(sc.seed, "negatives"))
            self._add_rings(sc, child_rng(sc.seed, "rings"))
            self._add_occluders(sc, child_rng(sc.seed, "occluders"))
        self._sample_shadows(sc, child_rng(sc.seed, "shadows"))
        if self.config.camera:
            sc.camera = self.camera.sample(child_rng(sc.seed, "camera"), (sc.size, sc.size, 3))
        return sc

    def render_scene(self, sc: Scene, debug: bool = False) -> dict:
        """The sample of a sampled scene (:meth:`sample_scene`; see :meth:`render` for the result):
        compositing with shadows, illumination, the camera chain and the labels, all without a
        random draw, so a scene renders to the same bytes every time."""
        canvas = Canvas(sc.background_image)
        key_alpha = self._composite(sc, canvas, debug)
        return self._finish(sc, canvas, key_alpha, debug)

    def _start_scene(self, index: int, run_seed: int) -> Scene:
        """Seeds, asset-bank generation, background, scene light and illumination
        (:func:`synth.spec.sample_light`), reflection env, shaded or flat look."""
        c = self.config
        seed = sample_seed(run_seed, index)
        S = c.size
        bank_seed = None
        if _any_bank(c):
            bank_seed = asset_bank_seed(run_seed, index // c.asset_bank_refresh)
        bsrc = self.backgrounds
        if bank_seed is not None and c.background_bank_size > 0 and hasattr(bsrc, "sample_banked"):
            bg, bg_meta = bsrc.sample_banked(child_rng(seed, "background"), (S, S), bank_seed=bank_seed,
                                             bank_size=c.background_bank_size)
        else:
            bg, bg_meta = bsrc.sample(child_rng(seed, "background"), (S, S))
        if bg.shape != (S, S, 3) or bg.dtype != np.uint8:
            raise ValueError(f"background source {self.backgrounds!r} returned {bg.dtype} {bg.shape}, expected uint8 {(S, S, 3)}")
        lighting = sample_light(child_rng(seed, "light"), c)
        # reflection environment: the background point-sampled at 64 x 64, box-blurred (81 samples
        # averaged, so an area resize, 0.1-0.35 ms, would change nothing visible)
        env = PreparedEnv.from_image(cv2.blur(cv2.resize(bg, (64, 64), interpolation=cv2.INTER_NEAREST), (9, 9)))
        shading = c.shading and not (c.flat_shading_prob > 0 and child_rng(seed, "look").random() < c.flat_shading_prob)
        return Scene(seed=seed, index=int(index), run_seed=int(run_seed), size=S, bank_seed=bank_seed,
                     background_meta=bg_meta, background_image=bg, lighting=lighting, env=env,
                     shading=bool(shading))

    def _place_keys(self, sc: Scene, r_lay, r_keys) -> None:
        """Render the layout's keys and place each by its layout kind (:mod:`synth.layout`)."""
        c, S, layout = self.config, sc.size, sc.layout
        delta = None  # cluster: the first key's offset between blade direction and rotation
        for k in range(layout.n):
            L, angle, phi = key_length_and_angle(r_lay, layout, k, S, delta)
            layer, hole, km = self._key_layer(r_keys, L, angle, sc.light, sc.env, S,
                                              sc.bank_seed if c.asset_bank_size > 0 else None, sc.shading)
            L = km["length_px"]  # shorter than drawn for a small cut-out (``cutout_max_upscale``)
            h, w = layer.alpha.shape
            hx, hy, bx, by = blade_frame(w, h, hole, angle, L)
            if layout.mode == "cluster":
                if delta is None:
                    delta = math.degrees(math.atan2(-by, bx)) - angle
                px, py = place_cluster(layout, phi, hx, hy)
            elif layout.mode == "crop":
                px, py = place_crop(r_lay, c, S, L, w, h, km)
            else:
                px, py = place_scatter(r_lay, c, S, w, h, km)
            layer.x0, layer.y0 = int(round(px)), int(round(py))
            km["xy"] = [layer.x0, layer.y0]
            sc.keys.append(PlacedKey(layer, [hx + layer.x0, hy + layer.y0], (bx, by), L, km))

    def _add_distractors(self, sc: Scene, r_neg) -> None:
        """Hard negatives (coins, clips, fobs, ...; mask 0), 30 % of them over the keys."""
        c, S = self.config, sc.size
        if self._distract is None:
            self._distract = distractor_renderers(c.distractor_kinds)
        fn, kinds, asset_fn = self._distract
        nd = int(r_neg.integers(c.n_distractors_range[0], c.n_distractors_range[1] + 1))
        for _ in range(nd):
            kind = str(pick(r_neg, kinds))
            size_px = max(8.0, loguniform(r_neg, *c.distractor_size_range) * S)
            ang_d = uniform(r_neg, 0, 360)
            # the scene's env (like keys): consistent reflections, and no per-object synthetic room
            if fn is fallback_distractor:
                rgba, dm = fn(r_neg, kind, size_px=size_px, angle_deg=ang_d, light_dir=sc.light, shading=sc.shading)
                lay = rgba_to_layer(rgba)
            elif sc.bank_seed is not None and c.distractor_bank_size > 0:  # cached geometry, re-lit; one warp
                rgba, dm, A, out_hw = asset_fn(r_neg, kind, size_px=size_px, angle_deg=ang_d, light_dir=sc.light,
                                               shading=sc.shading, env=sc.env, bank_seed=sc.bank_seed,
                                               bank_size=c.distractor_bank_size, cache=self.asset_cache)
                lay = warp_layer(rgba_to_layer(rgba), A, out_hw)
            else:
                rgba, dm = fn(r_neg, kind, size_px=size_px, angle_deg=ang_d, light_dir=sc.light, shading=sc.shading,
                              env=sc.env)
                lay = rgba_to_layer(rgba)
            hh, ww = lay.alpha.shape
            lay.x0 = int(uniform(r_neg, -ww * 0.3, S - ww * 0.7))
            lay.y0 = int(uniform(r_neg, -hh * 0.3, S - hh * 0.7))
            over = bool(r_neg.random() < 0.3)
            (sc.over_d if over else sc.under_d).append((lay, size_px))
            sc.neg_meta.append({"kind": kind, "size_px": size_px, "over_keys": over, "xy": [lay.x0, lay.y0],
                                **{k: v for k, v in dm.items() if k != "kind"}})

    def _add_rings(self, sc: Scene, r_ring) -> None:
        """Key rings through bow holes: one ring holding a cluster, else per key with ``key_ring_prob``."""
        c = self.config
        if sc.layout.mode == "cluster" and sc.keys:
            first = sc.keys[0]
            ctr_r = np.array(sc.layout.ring["centre"])
            hole_dir = (np.array(first.hole) - ctr_r)
            hole_dir = hole_dir / (np.linalg.norm(hole_dir) or 1)
            rings = [key_ring_layers(r_ring, first.hole, tuple(hole_dir), first.length_px, sc.light, sc.shading,
                                     radius=sc.layout.ring["radius"])]
        else:
            rings = [key_ring_layers(r_ring, key.hole, key.blade_dir, key.length_px, sc.light, sc.shading)
                     for key in sc.keys if r_ring.random() < c.key_ring_prob and key.meta.get("hole_xy") is not None]
        for under, over, rm in rings:
            sc.rings_under.append(under)
            sc.rings_over.append(over)
            sc.occ_meta.append({"type": "ring", **rm})

    def _add_occluders(self, sc: Scene, r_occ) -> None:
        """Fingers over a key (``hand_prob``) and a generic object edge across one (``blob_occluder_prob``)."""
        c, S = self.config, sc.size
        if sc.keys and r_occ.random() < c.hand_prob:
            key = pick(r_occ, sc.keys)
            lay, L = key.layer, key.length_px
            ys, xs = np.nonzero(lay.alpha > 0.5)
            if len(xs):
                nf = 1 + int(r_occ.random() < 0.4)
                for _ in range(nf):
                    j = int(r_occ.integers(len(xs)))
                    tip = (xs[j] + lay.x0, ys[j] + lay.y0)
                    t = uniform(r_occ, 0, 2 * math.pi)
                    width = max(3.0, L * uniform(r_occ, 0.22, 0.45))
                    fl, fm = finger_layer(r_occ, tip, (math.cos(t), math.sin(t)), width, 1.5 * S, sc.light, sc.shading, (S, S))
                    sc.tops.append(fl)
                    sc.occ_meta.append({"type": "finger", "tip": [float(tip[0]), float(tip[1])], "dir_rad": t, **fm})
        if sc.keys and r_occ.random() < c.blob_occluder_prob:
            key = pick(r_occ, sc.keys)
            hh, ww = key.layer.alpha.shape
            ctr = (key.layer.x0 + ww * uniform(r_occ, 0, 1), key.layer.y0 + hh * uniform(r_occ, 0, 1))
            rad = key.length_px * uniform(r_occ, 0.2, 0.6)
            bl, bm = blob_layer(r_occ, ctr, rad, sc.light, sc.shading)
            sc.tops.append(bl)
            sc.occ_meta.append({"type": "blob", "centre": list(ctr), **bm})

    def _sample_shadows(self, sc: Scene, r_sh) -> None:
        """Each layer's shadow (:func:`synth.spec.sample_shadow`), drawn in compositing order."""
        c, light = self.config, sc.light
        sc.shadows = {"under": [sample_shadow(r_sh, c, light, sz) for _, sz in sc.under_d],
                      "keys": [sample_shadow(r_sh, c, light, key.length_px) for key in sc.keys],
                      "over": [sample_shadow(r_sh, c, light, sz) for _, sz in sc.over_d],
                      "tops": [sample_shadow(r_sh, c, light, float(max(lay.alpha.shape)) * 0.3, lift=2.0)
                               for lay in sc.tops]}

    def _composite(self, sc: Scene, canvas: Canvas, debug: bool) -> np.ndarray | None:
        """Paste back to front, each layer after its shadow: distractors under, ring halves under,
        keys, ring halves over, distractors over, fingers and blobs. Returns the keys-only label
        coverage (debug)."""
        S = sc.size
        for (lay, _), sh in zip(sc.under_d, sc.shadows["under"], strict=True):
            cast_shadow(canvas, lay, sh)
            canvas.paste(lay)
        for lay in sc.rings_under:
            canvas.paste(lay)
        key_alpha = np.zeros((S, S), np.float32) if debug else None
        for k, (key, sh) in enumerate(zip(sc.keys, sc.shadows["keys"], strict=True), start=1):
            lay = key.layer
            cast_shadow(canvas, lay, sh)
            if key.meta.get("blend", {}).get("mode") == "poisson":
                new = poisson_colour(canvas.img, lay.rgba, lay.x0, lay.y0)
                if new is not None:
                    lay = Layer.from_rgba(new, lay.x0, lay.y0, lay.label)
            canvas.paste(lay, key_id=k)
            if debug and k in canvas.cov:  # keys-only "over" composite of the label coverage
                x0, y0, cov = canvas.cov[k]
                h_, w_ = cov.shape
                va = lay.alpha[y0 - lay.y0:y0 - lay.y0 + h_, x0 - lay.x0:x0 - lay.x0 + w_]
                ka = key_alpha[y0:y0 + h_, x0:x0 + w_]
                ka *= 1.0 - va
                ka += cov
        for lay in sc.rings_over:
            canvas.paste(lay)
        for (lay, _), sh in zip(sc.over_d, sc.shadows["over"], strict=True):
            cast_shadow(canvas, lay, sh)
            canvas.paste(lay)
        for lay, sh in zip(sc.tops, sc.shadows["tops"], strict=True):
            cast_shadow(canvas, lay, sh)
            canvas.paste(lay)
        return key_alpha

    def _finish(self, sc: Scene, canvas: Canvas, key_alpha, debug: bool) -> dict:
        """Illumination gradient x exposure, the camera chain, labels and the sample's meta."""
        c, S = self.config, sc.size
        amp, amb = sc.lighting.gradient_amplitude, sc.lighting.exposure
        # illumination gradient x exposure as one low-res gain map, applied by the camera chain in the
        # same pass as its vignette and the float -> uint8 conversion
        gain = None
        if amp > 0 or abs(amb - 1) > 1e-3:
            gain = F.gradient_gain((S, S), amp, sc.light[0], sc.light[1], scale=amb)
        if c.camera:
            image = self.camera.apply(canvas.img, sc.camera, gain)
        else:
            image = F.apply_gain(canvas.img, gain, out_uint8=True)
        mask, inst, counts = canvas.labels(c.ignore_band, c.ignore_band_px, c.min_visible_px)
        out = {"image": image, "mask": mask, "instances": inst, "meta": jsonable(sc.to_meta(counts))}
        if debug:
            cov = np.zeros((S, S), np.float32)
            for k, (x0, y0, cv) in canvas.cov.items():
                h_, w_ = cv.shape
                cov[y0:y0 + h_, x0:x0 + w_] += cv
            out["key_alpha"] = key_alpha
            out["coverage"] = cov
        return out
