//! Widgets iced 0.14 lacks: buttons and checkboxes that take the keyboard
//! focus, and a per-window scope in which Tab moves it.

pub mod focusable;
pub mod scope;

pub use focusable::{Focusable, checkbox};
pub use scope::scope;
