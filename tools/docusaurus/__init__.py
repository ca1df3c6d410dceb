"""Reading a Docusaurus book: its doc pages and URLs (`pages`), MDX cleaned to Markdown (`mdx`), heading
anchors (`anchors`) and the `_category_` files of its folders (`categories`)."""
