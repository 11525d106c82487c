"""The release: the pip package's version and the component package's (one number for both).

A program pins it: `pulumi package add <git URL>/provider@v<version>`, or
`nomad-vault-setup @ git+<git URL>@v<version>` in requirements.txt.
"""

__version__ = "0.1.0"
