"""Shop data made safe to interpolate into the Markdown that Streamlit renders.

Streamlit renders Markdown in `st.markdown`, `st.caption`, `st.write` of a string, headings, alerts,
metrics, progress texts, widget and expander labels, tab names, `st.radio` options and tooltips:
links, images (which the viewer's browser loads from wherever they point), `:red[...]` and
`:material/...:` directives, `$...$` LaTeX. A product title, a query, a file name or any other value
from an upload, the database or a user goes through `md` before it is put into such a string; the
app's own text does not. `st.selectbox` and `st.multiselect` options are plain text, so their
labels are not escaped (a backslash would show); HTML rendered with ``unsafe_allow_html=True``
takes `html.escape` instead.
"""

from __future__ import annotations

import html

# ASCII punctuation that CommonMark, GFM (tables, strikethrough), remark-math and Streamlit's
# directives give a meaning (`&` starts an entity; Streamlit finds ":material/" in the raw string
# before parsing, so "/" is escaped too); CommonMark makes any of them literal after a backslash.
# A line break becomes a space, so that a value cannot start a block (a heading, a list).
MARKDOWN_PUNCTUATION = "\\`*_{}[]()#+-.!|<>~$:&/"
_ESCAPES = str.maketrans({**{character: "\\" + character for character in MARKDOWN_PUNCTUATION},
                          "\n": " ", "\r": " "})


def md(value) -> str:
    r"""`value` as text that Streamlit's Markdown shows as it is, wherever it is interpolated.

    Every Markdown punctuation character gets a backslash before it, which renders the character
    itself, so a value reads the same and formats nothing: no image, link text, directive, icon,
    LaTeX, HTML or emphasis. Line breaks become spaces. (A bare URL in the value is still shown as
    a link to itself: GFM finds those in the text after the escapes are read.)

    >>> md("![x](http://evil.example/x.png) :red[boom] $x$")
    '\\!\\[x\\]\\(http\\:\\/\\/evil\\.example\\/x\\.png\\) \\:red\\[boom\\] \\$x\\$'
    >>> md("Mug, red")
    'Mug, red'
    >>> md("a\n# heading")
    'a \\# heading'
    """
    return str(value).translate(_ESCAPES)


def plotly_text(value) -> str:
    """`value` as a Plotly label shows it as it is. Plotly reads a few HTML tags in labels and hover
    text (``<a href>`` makes a link, ``<b>``, ``<br>``), so ``<``, ``>`` and ``&`` become entities,
    which it shows as the characters.

    >>> plotly_text('<a href="https://evil.example">Mug</a>')
    '&lt;a href="https://evil.example"&gt;Mug&lt;/a&gt;'
    """
    return html.escape(str(value), quote=False)
