"""hpo.report.build_report on hand-written studies; rendered in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import plotly.offline
import pytest
from typer.testing import CliRunner

from hpo.cli import app
from hpo.report import build_report
from tests._helpers.browser import dump_dom
from tests._helpers.fake_study import WORKERS
from tests._helpers.fake_study import make_study

SECTION_TITLES = (
    "Summary",
    "Optimisation history",
    "Learning curves (intermediate values)",
    "Parallel coordinates",
    "Parameter importances (PED-ANOVA)",
    "Trial timeline by worker",
    "Best trial CMC",
    "Trials",
)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Report of a study with complete, pruned and failed trials on two workers."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    study = make_study(optuna.storages.InMemoryStorage())
    build_report(study, out, storage_url="postgresql+psycopg2://alice:s3cret@db:5432/reid")
    return out.read_text(encoding="utf-8")


def _empty_study() -> optuna.Study:
    return optuna.create_study(study_name="empty", direction="maximize")


def test_report_has_every_section_title(full_report: str) -> None:
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in full_report


def test_report_learning_curves_show_pruned_trials(full_report: str) -> None:
    # Trials 1 and 4 were pruned; their curves are labelled with their state.
    assert "trial 1 (PRUNED)" in full_report
    assert "trial 4 (PRUNED)" in full_report
    assert "trial 3 (FAIL)" in full_report


def test_report_timeline_has_one_row_per_worker(full_report: str) -> None:
    for worker in WORKERS:
        assert worker in full_report


def test_report_header_names_best_trial_and_counts(full_report: str) -> None:
    assert "Best trial (validation): trial 2, val mAP = 60.0%" in full_report
    assert "COMPLETE 3" in full_report
    assert "PRUNED 2" in full_report
    assert "FAIL 1" in full_report


def test_report_masks_the_storage_password(full_report: str) -> None:
    assert "s3cret" not in full_report
    assert "postgresql+psycopg2://alice:***@db:5432/reid" in full_report


def test_report_inlines_plotly_js_exactly_once(full_report: str) -> None:
    marker = plotly.offline.get_plotlyjs()[:200]
    assert full_report.count(marker) == 1
    assert not re.search(r"<script[^>]+src=", full_report)


def test_report_shows_stored_test_result(tmp_path: Path) -> None:
    study = make_study(optuna.storages.InMemoryStorage())
    study.set_user_attr(
        "test_result", {"trial": 2, "metrics": {"mAP": 0.4321}, "cmc": [0.5, 0.7, 0.9]}
    )
    text = build_report(study, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "43.2%" in text
    assert "test (trial 2)" in text


def test_report_on_empty_study_has_notes_and_no_plotly(tmp_path: Path) -> None:
    text = build_report(_empty_study(), tmp_path / "empty.html").read_text(encoding="utf-8")
    assert "No complete trial yet" in text
    assert "The study has no trials." in text
    assert "Plotly.newPlot" not in text


def test_report_on_one_trial_study_explains_missing_importances(tmp_path: Path) -> None:
    study = _empty_study()
    trial = study.ask()
    trial.suggest_float("sigma", 0.1, 1.0)
    trial.report(0.2, 0)
    study.tell(trial, 0.3)
    text = build_report(study, tmp_path / "one.html").read_text(encoding="utf-8")
    assert "importances need at least 10 complete trials with parameters" in text
    assert "the best trial stored no &#x27;cmc&#x27;" in text


def test_report_replaces_an_existing_file_without_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report.html"
    build_report(_empty_study(), out)
    build_report(_empty_study(), out)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


_LAYOUT_PROBE = """<script>
window.addEventListener('load', function () {
  var width = document.documentElement.clientWidth;
  var out = document.createElement('pre');
  out.id = 'layout';
  out.textContent = JSON.stringify({
    width: width,
    page: document.documentElement.scrollWidth,
    tables: Array.from(document.querySelectorAll('table')).map(function (t) {
      var shown = t.closest('.table-box') || t;  // a boxed table is seen through its box
      return Math.ceil(shown.getBoundingClientRect().right) <= width;
    }),
    boxed: document.getElementById('trials-table').parentElement.scrollWidth,
    figures: Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (gd) {
      return gd.querySelector('svg.main-svg') !== null && gd.getBoundingClientRect().height > 0;
    })
  });
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.parametrize("width", [800, 1400])
def test_report_fits_the_page_and_draws_every_figure_in_chromium(
    tmp_path: Path, width: int
) -> None:
    study = make_study(optuna.storages.InMemoryStorage())
    for i in range(4):  # parameters with long names widen the trials table past the page
        trial = study.ask()
        trial.suggest_float("sigma", 0.1, 1.0)
        trial.suggest_float("margin", 1e-6, 1.0, log=True)
        for n in range(12):
            trial.suggest_float(f"a_rather_long_parameter_name_{n}", 0.1, 1.0)
        study.tell(trial, 0.1 * i)
    out = build_report(study, tmp_path / "r.html")
    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text(encoding="utf-8").replace("</body>", _LAYOUT_PROBE + "</body>"))
    dom = dump_dom(probed.resolve().as_uri(), virtual_time_ms=5_000, window_width=width)
    import html
    import json

    layout = json.loads(html.unescape(dom.split('<pre id="layout">', 1)[1].split("</pre>")[0]))
    assert layout["width"] <= width
    assert layout["page"] <= layout["width"], layout  # nothing widens the page
    assert all(layout["tables"]), layout  # every table ends inside it
    assert layout["boxed"] > layout["width"]  # the wide trials table scrolls in its own box
    # 5 figures (importances need 10 complete trials: a sentence), each drawn.
    assert layout["figures"] == [True] * 5, layout


def test_study_report_cli_writes_the_report(sqlite_url: str, tmp_path: Path) -> None:
    make_study(sqlite_url, name="cli-study")
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(
        app, ["study", "report", "cli-study", "--out", str(out), "--storage", sqlite_url]
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote {out} (6 trials of study 'cli-study')." in result.output
    assert "<h1>Study cli-study</h1>" in out.read_text(encoding="utf-8")


def test_study_report_cli_names_the_available_studies_for_an_unknown_name(
    sqlite_url: str, tmp_path: Path
) -> None:
    make_study(sqlite_url, name="cli-study")
    result = CliRunner().invoke(
        app, ["study", "report", "nope", "--out", str(tmp_path / "x.html"), "--storage", sqlite_url]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: no study 'nope' in {sqlite_url}; available: cli-study"
    )
    assert not (tmp_path / "x.html").exists()


def test_report_draws_running_trials_up_to_now(tmp_path: Path) -> None:
    study = make_study(optuna.storages.InMemoryStorage())
    running = study.ask()
    running.suggest_float("sigma", 0.1, 1.0)
    running.set_user_attr("worker", "gpu-node-c:303")
    running.report(0.3, 0)
    text = build_report(study, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "trial 6 (RUNNING)" in text
    assert "gpu-node-c:303" in text
    assert "RUNNING 1" in text


# Appended to a copy of the report: once plotly has drawn, write each figure's data (as the
# browser holds it) and the trials table after a click on its mAP header into the page.
_PROBE = """<script>
window.addEventListener('load', function () {
  var figures = {};
  document.querySelectorAll('.js-plotly-plot').forEach(function (gd) {
    figures[gd.id] = {data: gd.data.map(function (t) {
      return {type: t.type, name: t.name, meta: t.meta, x: t.x, y: t.y,
              line: t.line, dimensions: t.dimensions};
    }), drawn: gd.querySelector('svg.main-svg') !== null,
       colorbar: gd.querySelector('.colorbar') !== null};
  });
  var table = document.getElementById('trials-table');
  var header = Array.from(table.tHead.rows[0].cells).findIndex(function (th) {
    return th.textContent === 'val mAP (%)';
  });
  table.tHead.rows[0].cells[header].click();
  table.tHead.rows[0].cells[header].click();
  var order = Array.from(table.tBodies[0].rows).map(function (r) { return r.dataset.trial; });
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({figures: figures, order: order});
  document.body.appendChild(out);
});
</script>"""


def _probe(dom: str) -> dict:
    import html
    import json

    text = dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]
    return json.loads(html.unescape(text))


def test_report_figures_hold_the_study_in_chromium(tmp_path: Path) -> None:
    study = make_study(optuna.storages.InMemoryStorage())
    out = build_report(study, tmp_path / "r.html")
    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"))
    result = _probe(dump_dom(probed.resolve().as_uri(), virtual_time_ms=5_000))
    figures = result["figures"]
    assert all(f["drawn"] for f in figures.values())

    # Learning curves: 1-based epochs, values in %, the best trial (2) drawn last and thick.
    curves = figures["figure-2"]["data"]
    best = curves[-1]
    assert best["meta"] == "trial 2 (COMPLETE) (best)"
    assert best["name"] == "best: trial 2"
    assert best["line"]["width"] == 5
    assert best["x"] == [1, 2, 3, 4]
    assert best["y"] == pytest.approx([15.0, 30.0, 45.0, 60.0])
    assert all(c["line"]["width"] == 2 for c in curves[:-1])

    # Parallel coordinates: the 3 complete and 2 pruned trials, every line on a shown scale.
    (parcoords,) = figures["figure-3"]["data"]
    assert parcoords["type"] == "parcoords"
    assert parcoords["line"]["showscale"] is True
    assert sorted(parcoords["line"]["color"]) == pytest.approx([5.0, 7.5, 40.0, 50.0, 60.0])
    labels = [d["label"] for d in parcoords["dimensions"]]
    assert labels == ["sigma", "margin (log)", "state", "val mAP (%)"]
    # The log-searched margin sits on a log axis labelled with its values (3 digits).
    margin = parcoords["dimensions"][1]
    assert all(len(t.replace(".", "").lstrip("0")) <= 3 or "e" in t for t in margin["ticktext"])
    assert figures["figure-3"]["colorbar"]

    # Importances: not drawn from 3 complete trials; a sentence says why.
    assert "importances need at least 10 complete trials" in out.read_text()
    # The optimisation history shows the pruned trials (1 and 4) at their last value.
    pruned = next(t for t in figures["figure-1"]["data"] if (t["name"] or "").startswith("pruned"))
    assert pruned["x"] == [1, 4] and pruned["y"] == pytest.approx([5.0, 7.5])

    # The trials table sorts by validation mAP (two clicks: descending): 2, 5, 0, then the
    # trials without a validation mAP.
    assert result["order"][:3] == ["2", "5", "0"]


def test_report_trials_table_and_setup_section(full_report: str) -> None:
    table = full_report.split("id='trials-table'", 1)[1]
    header = table.split("</thead>", 1)[0]
    for column in ("val mAP (%)", "R1 (%)", "R5 (%)", "R10 (%)", "epochs", "sigma"):
        assert f">{column}</th>" in header
    assert ">mAP (%)</th>" not in header  # the objective column already is the val mAP
    assert "<tr class='best' data-trial='2'>" in table
    assert "2 \u2605 best" in table
    assert "<td data-value='0.6'>60.0%</td>" in table  # trial 2's val mAP, shown in %
    assert "<td data-value='0.7'>70.0</td>" in table  # its rank-1, same precision
    setup = full_report.split("<section id='setup'>", 1)[1].split("</section>", 1)[0]
    for text in ("search-space", "sampler", "pruner", "effective options", "The whole spec"):
        assert text in setup
    assert "id='objective-name'>val mAP (maximize)" in full_report
