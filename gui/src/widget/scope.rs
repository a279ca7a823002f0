//! Tab and Shift-Tab, handled inside one window. iced's focus tasks visit
//! every open window, so with the status window and the wizard both open
//! Tab would wander into the window the user is not looking at; a key only
//! reaches the window it was typed in, so the move is made from here, on
//! this window's widgets alone.

use iced::advanced::layout::{self, Layout};
use iced::advanced::overlay;
use iced::advanced::renderer;
use iced::advanced::widget::Widget;
use iced::advanced::widget::operation::{self, Operation, Outcome, focusable};
use iced::advanced::widget::tree::Tree;
use iced::advanced::{Clipboard, Shell};
use iced::keyboard::{self, key};
use iced::{Element, Event, Length, Rectangle, Size, Vector, mouse};

pub struct Scope<'a, M> {
    content: Element<'a, M>,
}

/// Wraps a window's whole view.
pub fn scope<'a, M: 'a>(content: impl Into<Element<'a, M>>) -> Scope<'a, M> {
    Scope {
        content: content.into(),
    }
}

impl<M> Scope<'_, M> {
    fn move_focus(
        &mut self,
        tree: &mut Tree,
        layout: Layout<'_>,
        renderer: &iced::Renderer,
        backwards: bool,
    ) {
        let mut op: Box<dyn Operation> = if backwards {
            Box::new(focusable::focus_previous())
        } else {
            Box::new(focusable::focus_next())
        };
        // Counting the focusable widgets, then moving: a chain, run here
        // as the runtime would.
        loop {
            self.content
                .as_widget_mut()
                .operate(tree, layout, renderer, op.as_mut());
            match op.finish() {
                Outcome::Chain(next) => op = next,
                Outcome::None | Outcome::Some(()) => break,
            }
        }
    }

    /// The index of the focused widget, if any.
    fn focused(
        &mut self,
        tree: &mut Tree,
        layout: Layout<'_>,
        renderer: &iced::Renderer,
    ) -> Option<usize> {
        let mut count = focusable::count();
        self.content.as_widget_mut().operate(
            tree,
            layout,
            renderer,
            &mut operation::black_box(&mut count),
        );
        match count.finish() {
            Outcome::Some(count) => count.focused,
            _ => None,
        }
    }
}

impl<'a, M: 'a> Widget<M, iced::Theme, iced::Renderer> for Scope<'a, M> {
    fn children(&self) -> Vec<Tree> {
        vec![Tree::new(&self.content)]
    }

    fn diff(&self, tree: &mut Tree) {
        tree.diff_children(std::slice::from_ref(&self.content));
    }

    fn size(&self) -> Size<Length> {
        self.content.as_widget().size()
    }

    fn size_hint(&self) -> Size<Length> {
        self.content.as_widget().size_hint()
    }

    fn layout(
        &mut self,
        tree: &mut Tree,
        renderer: &iced::Renderer,
        limits: &layout::Limits,
    ) -> layout::Node {
        self.content
            .as_widget_mut()
            .layout(&mut tree.children[0], renderer, limits)
    }

    fn operate(
        &mut self,
        tree: &mut Tree,
        layout: Layout<'_>,
        renderer: &iced::Renderer,
        operation: &mut dyn Operation,
    ) {
        self.content
            .as_widget_mut()
            .operate(&mut tree.children[0], layout, renderer, operation);
    }

    fn update(
        &mut self,
        tree: &mut Tree,
        event: &Event,
        layout: Layout<'_>,
        cursor: mouse::Cursor,
        renderer: &iced::Renderer,
        clipboard: &mut dyn Clipboard,
        shell: &mut Shell<'_, M>,
        viewport: &Rectangle,
    ) {
        self.content.as_widget_mut().update(
            &mut tree.children[0],
            event,
            layout,
            cursor,
            renderer,
            clipboard,
            shell,
            viewport,
        );
        if shell.is_event_captured() {
            return;
        }
        let Event::Keyboard(keyboard::Event::KeyPressed {
            key: keyboard::Key::Named(key::Named::Tab),
            modifiers,
            ..
        }) = event
        else {
            return;
        };
        let tree = &mut tree.children[0];
        self.move_focus(tree, layout, renderer, modifiers.shift());
        // iced's moves stop on "nothing focused" past either end; one more
        // goes round to the other end, as Tab does everywhere else.
        if self.focused(tree, layout, renderer).is_none() {
            self.move_focus(tree, layout, renderer, modifiers.shift());
        }
        super::reveal::reveal_focused(&mut self.content, tree, layout, renderer);
        shell.capture_event();
        shell.request_redraw();
    }

    fn draw(
        &self,
        tree: &Tree,
        renderer: &mut iced::Renderer,
        theme: &iced::Theme,
        style: &renderer::Style,
        layout: Layout<'_>,
        cursor: mouse::Cursor,
        viewport: &Rectangle,
    ) {
        self.content.as_widget().draw(
            &tree.children[0],
            renderer,
            theme,
            style,
            layout,
            cursor,
            viewport,
        );
    }

    fn mouse_interaction(
        &self,
        tree: &Tree,
        layout: Layout<'_>,
        cursor: mouse::Cursor,
        viewport: &Rectangle,
        renderer: &iced::Renderer,
    ) -> mouse::Interaction {
        self.content.as_widget().mouse_interaction(
            &tree.children[0],
            layout,
            cursor,
            viewport,
            renderer,
        )
    }

    fn overlay<'b>(
        &'b mut self,
        tree: &'b mut Tree,
        layout: Layout<'b>,
        renderer: &iced::Renderer,
        viewport: &Rectangle,
        translation: Vector,
    ) -> Option<overlay::Element<'b, M, iced::Theme, iced::Renderer>> {
        self.content.as_widget_mut().overlay(
            &mut tree.children[0],
            layout,
            renderer,
            viewport,
            translation,
        )
    }
}

impl<'a, M: 'a> From<Scope<'a, M>> for Element<'a, M> {
    fn from(scope: Scope<'a, M>) -> Self {
        Element::new(scope)
    }
}

/// Shift-Tab as a keyboard sends it (the simulator's `tap_key` has no
/// modifiers).
#[cfg(test)]
pub(crate) fn shift_tab() -> [Event; 2] {
    let tab = keyboard::Key::Named(key::Named::Tab);
    let physical = key::Physical::Unidentified(key::NativeCode::Unidentified);
    [
        Event::Keyboard(keyboard::Event::KeyPressed {
            key: tab.clone(),
            modified_key: tab.clone(),
            physical_key: physical,
            location: keyboard::Location::Standard,
            modifiers: keyboard::Modifiers::SHIFT,
            text: None,
            repeat: false,
        }),
        Event::Keyboard(keyboard::Event::KeyReleased {
            key: tab.clone(),
            modified_key: tab,
            physical_key: physical,
            location: keyboard::Location::Standard,
            modifiers: keyboard::Modifiers::SHIFT,
        }),
    ]
}
