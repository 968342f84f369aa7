//! Cross-folder moves.
