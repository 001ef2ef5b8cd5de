"""The standardizers' names and versions, and the one a GloVe source's name calls for.

Known to every layer without TensorFlow or Beam: the Beam launcher and workers, the
trainer's export and slices, and the CLIs. The standardizers themselves are
preprocessing/text.py (glove6b) and preprocessing/text_twitter.py (twitter), which read
their versions from here.
"""

import posixpath

GLOVE_ZIP_MEMBER_SEPARATOR = "#"  # --glove=glove.6B.zip#glove.6B.100d.txt
# The standardizers by name (preprocessing.text.STANDARDIZERS): glove6b matches GloVe 6B
# (Wikipedia + Gigaword), twitter the <user>/<url>/... tokens of GloVe's Twitter vectors.
GLOVE6B_STANDARDIZER = "glove6b"
TWITTER_STANDARDIZER = "twitter"
STANDARDIZER_NAMES = (GLOVE6B_STANDARDIZER, TWITTER_STANDARDIZER)
DEFAULT_STANDARDIZER = GLOVE6B_STANDARDIZER
# Each standardizer's version, kept here so that the Beam launcher and workers know it
# without importing TensorFlow (text.py and text_twitter.py read it from here). Bump a
# standardizer's version with any change to its rules: metadata.json records it, the
# trainer refuses a mismatch and text_mirror.py stops offering its mirror.
STANDARDIZER_VERSIONS = {GLOVE6B_STANDARDIZER: 2, TWITTER_STANDARDIZER: 1}


def standardizer_for(spec):
    """The standardizer a GloVe source's name calls for: twitter for GloVe's Twitter
    vectors (glove.twitter.27B.zip, glove.twitter.27B.zip#glove.twitter.27B.100d.txt,
    glove.twitter.27B.25d.txt.gz, ...), whose vocabulary has <user>, <url>, ...; glove6b
    for any other source."""
    archive, _, member = spec.partition(GLOVE_ZIP_MEMBER_SEPARATOR)
    name = f"{posixpath.basename(archive)} {member}".lower()
    return TWITTER_STANDARDIZER if "twitter" in name else GLOVE6B_STANDARDIZER
