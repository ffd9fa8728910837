"""The self-contained HTML report for product leads, built from a run's output files.

- :mod:`flows.report.render`: ``render_report`` and ``write_report``, the loading of a run
  folder's files and the context of the template;
- :mod:`flows.report.charts`: the matplotlib charts, as inline SVG;
- :mod:`flows.report.format`: how numbers and codes are printed on the page;
- ``report.html.j2``: the page itself (a Jinja2 template, autoescaped).
"""
