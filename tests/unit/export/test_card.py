"""Issue 28.7: the Markdown model card carries user text (site names, the ``card:`` section) as text, never as raw
HTML that a Markdown viewer would render or run; the HTML card already escaped it."""

from medtl.export.card import Section, render_html, render_markdown

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_user_text_is_escaped_in_both_cards():
    sections = [Section(f"Intended use {HOSTILE}", [f"Trained at site {HOSTILE} & elsewhere"],
                        [(["site", "AUC"], [[HOSTILE, 0.81234]])])]
    for rendered in (render_markdown(f"Card {HOSTILE}", sections), render_html(f"Card {HOSTILE}", sections)):
        assert "<script>" not in rendered and "<img" not in rendered
        assert "&lt;script&gt;" in rendered
    markdown = render_markdown("Card", sections)
    assert "| &lt;script&gt;" in markdown and "0.812" in markdown and "&amp; elsewhere" in markdown
