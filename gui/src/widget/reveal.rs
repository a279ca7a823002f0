//! Scrolls the focused widget into view. A window smaller than its content
//! scrolls, and a focus moved by Tab onto a widget out of view would leave
//! the keyboard user pressing keys at something they cannot see.

use iced::advanced::Layout;
use iced::advanced::widget::operation::scrollable::AbsoluteOffset;
use iced::advanced::widget::operation::{Focusable, Operation, Scrollable};
use iced::advanced::widget::{Id, Tree};
use iced::{Element, Rectangle, Vector};

/// Room kept around the widget: its focus ring, and a little air.
const MARGIN: f32 = 12.0;

/// Scrolls the scrollable that holds the focused widget of `content` (the
/// innermost, if they nest) just enough to show it whole.
pub fn reveal_focused<M>(
    content: &mut Element<'_, M>,
    tree: &mut Tree,
    layout: Layout<'_>,
    renderer: &iced::Renderer,
) {
    let mut find = Find::default();
    content
        .as_widget_mut()
        .operate(tree, layout, renderer, &mut find);
    let Some((Some(around), widget)) = find.found else {
        return;
    };
    let dy = scroll_needed(&around, widget);
    if dy != 0.0 {
        let mut scroll = ScrollBy {
            target: around.index,
            seen: 0,
            dy,
        };
        content
            .as_widget_mut()
            .operate(tree, layout, renderer, &mut scroll);
    }
}

/// A scrollable as the operation saw it, numbered in tree order.
#[derive(Debug, Clone, Copy)]
struct Around {
    index: usize,
    bounds: Rectangle,
    translation: Vector,
}

/// How far down (positive) or up to scroll so `widget` is in view.
fn scroll_needed(around: &Around, widget: Rectangle) -> f32 {
    let top = widget.y - around.translation.y - MARGIN;
    let bottom = widget.y + widget.height - around.translation.y + MARGIN;
    let view = around.bounds;
    if top < view.y {
        top - view.y
    } else if bottom > view.y + view.height {
        // A widget taller than the view shows its top.
        (bottom - (view.y + view.height)).min(top - view.y)
    } else {
        0.0
    }
}

#[derive(Default)]
struct Find {
    seen: usize,
    /// The scrollable just reported: its children come in the next
    /// `traverse` (how iced's scrollable operates).
    entering: Option<Around>,
    stack: Vec<Around>,
    found: Option<(Option<Around>, Rectangle)>,
}

impl Operation for Find {
    fn traverse(&mut self, operate: &mut dyn FnMut(&mut dyn Operation)) {
        let entered = self.entering.take();
        if let Some(around) = entered {
            self.stack.push(around);
        }
        operate(self);
        if entered.is_some() {
            self.stack.pop();
        }
    }

    fn scrollable(
        &mut self,
        _id: Option<&Id>,
        bounds: Rectangle,
        _content_bounds: Rectangle,
        translation: Vector,
        _state: &mut dyn Scrollable,
    ) {
        self.entering = Some(Around {
            index: self.seen,
            bounds,
            translation,
        });
        self.seen += 1;
    }

    fn focusable(&mut self, _id: Option<&Id>, bounds: Rectangle, state: &mut dyn Focusable) {
        if state.is_focused() && self.found.is_none() {
            self.found = Some((self.stack.last().copied(), bounds));
        }
    }
}

struct ScrollBy {
    target: usize,
    seen: usize,
    dy: f32,
}

impl Operation for ScrollBy {
    fn traverse(&mut self, operate: &mut dyn FnMut(&mut dyn Operation)) {
        operate(self);
    }

    fn scrollable(
        &mut self,
        _id: Option<&Id>,
        bounds: Rectangle,
        content_bounds: Rectangle,
        _translation: Vector,
        state: &mut dyn Scrollable,
    ) {
        if self.seen == self.target {
            state.scroll_by(
                AbsoluteOffset { x: 0.0, y: self.dy },
                bounds,
                content_bounds,
            );
        }
        self.seen += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(offset: f32) -> Around {
        Around {
            index: 0,
            bounds: Rectangle::new([0.0, 100.0].into(), [300.0, 200.0].into()),
            translation: Vector::new(0.0, offset),
        }
    }

    fn widget(y: f32, height: f32) -> Rectangle {
        Rectangle::new([10.0, y].into(), [100.0, height].into())
    }

    #[test]
    fn scrolls_only_as_far_as_needed() {
        // In view: nothing.
        assert_eq!(scroll_needed(&around(0.0), widget(150.0, 30.0)), 0.0);
        // Below: down until its bottom and the margin show.
        assert_eq!(scroll_needed(&around(0.0), widget(290.0, 30.0)), 32.0);
        // Above, scrolled past: up to its top less the margin.
        assert_eq!(scroll_needed(&around(100.0), widget(150.0, 30.0)), -62.0);
        // Taller than the view: its top.
        assert_eq!(scroll_needed(&around(0.0), widget(150.0, 500.0)), 38.0);
    }

    /// Tab onto a button below the fold scrolls it into view, in a window
    /// as small as the status window may be.
    #[test]
    fn tab_scrolls_the_focused_button_into_view() {
        use iced::widget::{button, column, container, scrollable, text};
        crate::simulated::use_tiny_skia();
        let content = scrollable(column![
            container(text("Tall")).height(1000),
            super::super::focusable::button("Below", Some(()), button::primary),
        ])
        .height(iced::Fill);
        let mut ui = iced_test::Simulator::with_size(
            iced::Settings::default(),
            iced::Size::new(300.0, 300.0),
            super::super::scope(content),
        );
        let visible = |ui: &mut iced_test::Simulator<'_, ()>| {
            ui.find("Below").unwrap().visible_bounds().is_some()
        };
        assert!(!visible(&mut ui));
        ui.tap_key(iced::keyboard::key::Named::Tab);
        assert!(visible(&mut ui));
    }
}
