"""Grid labeling against single images: labels per minute by a scripted annotator in a real
browser, with the same keystroke costs.

    .venv/bin/python -m bench.grid                  # 5,000 digits, a first model on 200 labels
    .venv/bin/python -m bench.grid --seed 1 --key-ms 300,600 --look-ms 0,250

The annotator reads each image's true class (the MNIST label behind its file name) and does
what a careful person would: in the single view one key per image (the class, or Enter where
the model's suggestion is right); in the grid, for each cell whose proposed label is wrong,
arrow keys to it and its class key, then Enter for the page. Everything runs for real: an
embedded PostgreSQL and an image store in a temporary directory, a first round trained by
``manage.py worker --once`` on ``--first-labels`` true labels (the queue's order, the
predictions and the page picks come from it), gunicorn serving the built web UI, Chromium
driven by Playwright, every label through the outbox to the API.

A person's time is the browser's time plus what the keys and the looking cost, which a script
does not spend: labels/minute = labels / (measured UI time + keys x ``--key-ms`` + images x
``--look-ms``), for each pair of costs. ``--look-ms`` 0 is the issue's "same keystroke costs";
a glance per image (it must be looked at in either view) is the honest sensitivity: it is the
part of a person's time a grid cannot remove. Printed: labels/minute for both views, their
ratio, the keys per label, and each view's label accuracy against the truth, after every label
has reached the database (once: no image has two rows from the annotator).

Not a like-for-like comparison of what is labeled: the single view serves the most uncertain
images first (the ones that teach the model), a grid the surest. Both are the product's
defaults; the grid is what the queue serves when the model is sure.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import configure, load_rows, start_servers, stop, write_images

PASSWORD = "bench-grid-password"
IMAGE = "img[data-image-id]"
GRID = '[data-testid="grid"][data-ready="true"]'
CELL = '[data-testid="grid-cell"]'


@dataclass
class Tally:
    labels: int = 0
    keys: int = 0
    seconds: float = 0.0
    pages: list[int] = field(default_factory=list)  # cells per grid page
    fixed: list[int] = field(default_factory=list)  # cells corrected per grid page

    def per_minute(self, key_s: float, look_s: float) -> float:
        return 60 * self.labels / (self.seconds + self.keys * key_s + self.labels * look_s)


def prepare(args, env):
    """A 10-class digits project with suggestions on and no retraining while measured, its
    images, an annotator, and a first model (``bench.load.warm_up``); returns (project,
    image id -> true class)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from bench.load import warm_up
    from labeling.projects.models import Membership, Project, Role

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # the built web UI
    project = Project.objects.create(
        name="Grid bench", slug="grid", labels=[str(d) for d in range(10)], retrain_every=0,
        show_suggestions=True,
    )  # fmt: skip
    rows, truth = write_images(args.pool, Path(env["LABELLOOP_MEDIA_ROOT"]))
    ids = load_rows(project, rows)
    users = get_user_model().objects
    admin = users.create_user(username="load-admin", is_staff=True)
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    annotator = users.create_user(username="annotator", password=PASSWORD)
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    print(f"first round on {args.first_labels} labels (worker --once) ...")
    # The first labels are a random sample of the pool (its rows are in class order).
    order = random.Random(args.seed).sample(range(len(ids)), len(ids))
    warm_up(project, [ids[n] for n in order], [truth[n] for n in order], args.first_labels, env)
    named = {i: str(t) for i, t in zip(ids, truth, strict=True)}
    model_precision(project, named)
    return project, named


def model_precision(project, truth: dict[int, str]) -> None:
    """How often the first model is right on the whole pool and on its sure images (what
    a page is made of), against the truth."""
    from django.conf import settings

    from labeling.images.models import Image

    rows = Image.objects.filter(project=project).values_list("id", "predicted_label", "confidence")
    threshold = settings.LABELLOOP_GRID_MIN_CONFIDENCE
    right = [(truth[i] == p, c) for i, p, c in rows if p is not None]
    sure = [ok for ok, c in right if c >= threshold]
    print(
        f"  first model: right on {sum(ok for ok, _ in right) / len(right):.1%} of the pool; "
        f"{len(sure):,} images at confidence >= {threshold:.0%}, right on "
        f"{sum(sure) / max(len(sure), 1):.1%} of them"
    )


def log_in(page, base: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username").fill("annotator")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def single(page, base: str, project_id: int, truth: dict[int, str], labels: int) -> Tally:
    tally = Tally()
    page.goto(f"{base}/projects/{project_id}/label")
    page.wait_for_selector(IMAGE)
    started = time.perf_counter()
    for _ in range(labels):
        shown = page.get_attribute(IMAGE, "data-image-id")
        page.keyboard.press(truth[int(shown)])  # the class key: one key, as Enter would be
        page.wait_for_function(
            "id => { const i = document.querySelector('img[data-image-id]');"
            " return i && i.dataset.imageId !== id && i.complete; }",
            arg=shown,
        )
        tally.labels += 1
        tally.keys += 1
    tally.seconds = time.perf_counter() - started
    return tally


def _layout(page) -> list[dict]:
    return page.eval_on_selector_all(
        CELL,
        "cells => cells.map(c => { const r = c.getBoundingClientRect();"
        " return {id: c.dataset.imageId, label: c.dataset.label || '',"
        " cursor: c.dataset.cursor === 'true', x: r.left, y: r.top}; })",
    )


def _moves(cells: list[dict], frm: int, to: int) -> list[str]:
    """The arrow keys from cell ``frm`` to cell ``to`` of the page as laid out on screen."""
    rows = sorted({round(c["y"]) for c in cells})
    cols = sorted({round(c["x"]) for c in cells})
    r0, c0 = rows.index(round(cells[frm]["y"])), cols.index(round(cells[frm]["x"]))
    r1, c1 = rows.index(round(cells[to]["y"])), cols.index(round(cells[to]["x"]))
    vertical = ["ArrowDown" if r1 > r0 else "ArrowUp"] * abs(r1 - r0)
    return vertical + ["ArrowRight" if c1 > c0 else "ArrowLeft"] * abs(c1 - c0)


def grid(page, base: str, project_id: int, truth: dict[int, str], labels: int) -> Tally:
    tally = Tally()
    page.goto(f"{base}/projects/{project_id}/label?mode=grid")
    page.wait_for_selector(GRID)
    started = time.perf_counter()
    while tally.labels < labels:
        cells = _layout(page)
        at = next((n for n, c in enumerate(cells) if c["cursor"]), 0)
        fixed = 0
        for n, cell in enumerate(cells):
            if cell["label"] == truth[int(cell["id"])]:
                continue
            for key in _moves(cells, at, n):
                page.keyboard.press(key)
                tally.keys += 1
            page.keyboard.press(truth[int(cell["id"])])
            tally.keys += 1
            at, fixed = n, fixed + 1
        first = cells[0]["id"]
        page.keyboard.press("Enter")
        tally.keys += 1
        tally.labels += len(cells)
        tally.pages.append(len(cells))
        tally.fixed.append(fixed)
        page.wait_for_function(
            "id => { const g = document.querySelector('[data-testid=grid][data-ready=true]');"
            " const c = g && g.querySelector('[data-testid=grid-cell]');"
            " return c && c.dataset.imageId !== id; }",
            arg=first,
            timeout=60_000,
        )
    tally.seconds = time.perf_counter() - started
    return tally


def settled(project, user, expected: int, timeout: float = 120) -> None:
    from django.db import connection

    from labeling.annotations.models import Annotation

    deadline = time.monotonic() + timeout
    try:
        while Annotation.objects.filter(annotator=user).count() < expected:
            if time.monotonic() > deadline:
                raise SystemExit("the labels did not all arrive")
            time.sleep(0.5)
    finally:
        connection.close()


def accuracy(user, view: str, truth: dict[int, str]) -> tuple[float, int, int]:
    from django.db.models import Count

    from labeling.annotations.models import Annotation

    rows = list(Annotation.objects.filter(annotator=user, view=view))
    twice = (
        Annotation.objects.filter(annotator=user)
        .values("image")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    right = sum(row.label == truth[row.image_id] for row in rows)
    return right / max(len(rows), 1), len(rows), twice


def report(args, one: Tally, many: Tally, user, truth: dict[int, str]) -> None:
    keys = [float(k) for k in args.key_ms.split(",")]
    looks = [float(k) for k in args.look_ms.split(",")]
    print(f"\nsingle: {one.labels} labels, {one.keys} keys, {one.seconds:.1f} s in the browser")
    print(
        f"grid:   {many.labels} labels on {len(many.pages)} pages of "
        f"{statistics.mean(many.pages):.1f}, {many.keys} keys "
        f"({statistics.mean(many.fixed):.2f} cells corrected per page), "
        f"{many.seconds:.1f} s in the browser"
    )
    print("\n| key ms | look ms | single labels/min | grid labels/min | grid / single |")
    print("| --- | --- | --- | --- | --- |")
    for key in keys:
        for look in looks:
            a = one.per_minute(key / 1000, look / 1000)
            b = many.per_minute(key / 1000, look / 1000)
            print(f"| {key:.0f} | {look:.0f} | {a:.1f} | {b:.1f} | x{b / a:.2f} |")
    per = (one.keys / one.labels, many.keys / many.labels)
    print(f"\nkeys per label: single {per[0]:.2f}, grid {per[1]:.3f}")
    for view in ("single", "grid"):
        right, n, _ = accuracy(user, view, truth)
        print(f"label accuracy, {view}: {right:.2%} of {n}")
    print(f"images with two labels from the annotator: {accuracy(user, 'grid', truth)[2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--first-labels", type=int, default=200)
    parser.add_argument("--labels", type=int, default=240, help="labels in each view")
    parser.add_argument("--seed", type=int, default=0, help="draws the first labels")
    parser.add_argument("--key-ms", default="400", help="costs of one key press, ms")
    parser.add_argument("--look-ms", default="0,300", help="costs of looking at one image, ms")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="labelloop-grid-"))
    env = configure(data_dir)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from playwright.sync_api import sync_playwright

    from labeling.core import embedded_pg

    print(f"data dir {data_dir}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    try:
        project, truth = prepare(args, env)
        user = get_user_model().objects.get(username="annotator")
        connection.close()
        base, web, worker = start_servers(env, 2)
        stop(worker)  # no retraining while measured: both views face the same model
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                log_in(page, base)
                one = single(page, base, project.pk, truth, args.labels)
                many = grid(page, base, project.pk, truth, args.labels)
                # The page stays open while its outbox sends; the database is read from a
                # thread of its own (Playwright's loop runs on this one).
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(settled, project, user, one.labels + many.labels).result()
                browser.close()
        finally:
            stop(web)
        report(args, one, many, user, truth)
    finally:
        connection.close()
        embedded_pg.stop(data_dir / "pgdata")
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
