"""Custom Rasa components for Vietnamese text: diacritic folding and folded lookup entity extraction."""
