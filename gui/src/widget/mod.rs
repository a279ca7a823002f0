//! Widgets iced 0.14 lacks: buttons and checkboxes that take the keyboard
//! focus, and a per-window scope in which Tab moves it and scrolls to it.

pub mod focusable;
mod reveal;
pub mod scope;

pub use focusable::{Focusable, checkbox};
pub use scope::scope;
