//! A button or checkbox that takes the keyboard focus. iced 0.14's own
//! cannot, so a keyboard-only user could never press them: this wraps one,
//! leaves layout, drawing and the mouse to it, and adds the focus (visited
//! by iced's focus operations with text fields, in tree order), the keys
//! that activate it and a ring that shows where the focus is.

use iced::advanced::layout::{self, Layout};
use iced::advanced::renderer::{self, Quad};
use iced::advanced::widget::operation::{Focusable as FocusState, Operation};
use iced::advanced::widget::tree::{self, Tree};
use iced::advanced::widget::{Id, Widget};
use iced::advanced::{Clipboard, Shell};
use iced::keyboard::{self, key};
use iced::widget::text;
use iced::{Border, Color, Element, Event, Length, Rectangle, Size, mouse, touch};

/// Dark blue: visible next to the light theme's blue primary buttons and on
/// white, with a white gap between ring and button.
pub const RING: Color = Color::from_rgb(0.05, 0.15, 0.55);

/// Which keys activate the focused widget: a button takes Enter and Space,
/// a checkbox only Space (Enter stays the step's primary action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    EnterAndSpace,
    Space,
}

pub struct Focusable<'a, M> {
    content: Element<'a, M>,
    /// What the keys send; `None` is disabled, and a disabled widget is
    /// left out of the focus order.
    on_activate: Option<M>,
    keys: Keys,
    id: Option<Id>,
}

#[derive(Debug, Default)]
struct State {
    focused: bool,
}

impl FocusState for State {
    fn is_focused(&self) -> bool {
        self.focused
    }

    fn focus(&mut self) {
        self.focused = true;
    }

    fn unfocus(&mut self) {
        self.focused = false;
    }
}

impl<'a, M: Clone + 'a> Focusable<'a, M> {
    /// `content` handles the mouse itself; give it the same message as
    /// `on_activate` so mouse and keyboard do the same.
    pub fn new(content: impl Into<Element<'a, M>>, on_activate: Option<M>) -> Self {
        Self {
            content: content.into(),
            on_activate,
            keys: Keys::EnterAndSpace,
            id: None,
        }
    }

    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = keys;
        self
    }

    /// For `operation::focus`: a step focuses its primary action on arrival.
    pub fn id(mut self, id: impl Into<Id>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The id on one of two widgets, whichever is the step's next thing
    /// to do (the checkbox before the button it enables).
    pub fn id_if(self, yes: bool, id: impl Into<Id>) -> Self {
        if yes { self.id(id) } else { self }
    }

    fn activated_by(&self, key: &keyboard::Key) -> bool {
        match key.as_ref() {
            keyboard::Key::Named(key::Named::Space) | keyboard::Key::Character(" ") => true,
            keyboard::Key::Named(key::Named::Enter) => self.keys == Keys::EnterAndSpace,
            _ => false,
        }
    }
}

/// A checkbox that Space toggles when it has the focus.
pub fn checkbox<'a, M: Clone + 'a>(
    label: &'a str,
    checked: bool,
    on_toggle: fn(bool) -> M,
) -> Focusable<'a, M> {
    let inner = iced::widget::checkbox(checked)
        .label(label)
        .on_toggle(on_toggle);
    Focusable::new(inner, Some(on_toggle(!checked))).keys(Keys::Space)
}

/// A button with a text label, in `style`, enabled when `message` is `Some`.
pub fn button<'a, M: Clone + 'a>(
    label: &'a str,
    message: Option<M>,
    style: impl Fn(&iced::Theme, iced::widget::button::Status) -> iced::widget::button::Style + 'a,
) -> Focusable<'a, M> {
    let inner = iced::widget::button(text(label))
        .on_press_maybe(message.clone())
        .padding([8, 16])
        .style(style);
    Focusable::new(inner, message)
}

impl<'a, M: Clone + 'a> Widget<M, iced::Theme, iced::Renderer> for Focusable<'a, M> {
    fn tag(&self) -> tree::Tag {
        tree::Tag::of::<State>()
    }

    fn state(&self) -> tree::State {
        tree::State::new(State::default())
    }

    fn children(&self) -> Vec<Tree> {
        vec![Tree::new(&self.content)]
    }

    fn diff(&self, tree: &mut Tree) {
        // A button that became disabled (a request under way) lets go of
        // the focus, or it would come back with it beside another's.
        if self.on_activate.is_none() {
            tree.state.downcast_mut::<State>().focused = false;
        }
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
        let state = tree.state.downcast_mut::<State>();
        if self.on_activate.is_some() {
            operation.focusable(self.id.as_ref(), layout.bounds(), state);
        } else {
            state.focused = false;
        }
        // The label stays findable (the simulator's `click("Next")`).
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
        let state = tree.state.downcast_mut::<State>();
        match event {
            Event::Keyboard(keyboard::Event::KeyPressed {
                key,
                modifiers,
                repeat: false,
                ..
            }) if state.focused
                && !modifiers.command()
                && !modifiers.alt()
                && self.activated_by(key) =>
            {
                if let Some(message) = &self.on_activate {
                    shell.publish(message.clone());
                    shell.capture_event();
                    return;
                }
            }
            // The pointer takes over: as with a text field, a click
            // anywhere ends the keyboard focus, and its ring goes.
            Event::Mouse(mouse::Event::ButtonPressed(_))
            | Event::Touch(touch::Event::FingerPressed { .. })
                if state.focused =>
            {
                state.focused = false;
                shell.request_redraw();
            }
            _ => {}
        }
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
        use iced::advanced::Renderer as _;
        self.content.as_widget().draw(
            &tree.children[0],
            renderer,
            theme,
            style,
            layout,
            cursor,
            viewport,
        );
        let focused = tree.state.downcast_ref::<State>().focused;
        if focused && self.on_activate.is_some() {
            // Outside the widget, with a 2 px gap: it never hides a label
            // or blends into the button's own border.
            renderer.fill_quad(
                Quad {
                    bounds: layout.bounds().expand(4.0),
                    border: Border {
                        color: RING,
                        width: 2.0,
                        radius: 8.0.into(),
                    },
                    ..Quad::default()
                },
                Color::TRANSPARENT,
            );
        }
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
}

impl<'a, M: Clone + 'a> From<Focusable<'a, M>> for Element<'a, M> {
    fn from(widget: Focusable<'a, M>) -> Self {
        Element::new(widget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::widget::scope;
    use crate::widget::scope::shift_tab;
    use iced::event::Status;
    use iced::widget::{column, text_input};
    use iced_test::simulator;

    #[derive(Debug, Clone, PartialEq)]
    enum Msg {
        A,
        B,
        Check(bool),
        Typed(String),
    }

    /// A disabled button, two enabled ones, a checkbox and a text field.
    fn view(checked: bool) -> Element<'static, Msg> {
        scope(column![
            button("Disabled", None::<Msg>, iced::widget::button::primary),
            button("A", Some(Msg::A), iced::widget::button::primary),
            button("B", Some(Msg::B), iced::widget::button::secondary),
            checkbox("Check", checked, Msg::Check),
            text_input("field", "").on_input(Msg::Typed),
        ])
        .into()
    }

    fn messages(ui: iced_test::Simulator<'_, Msg>) -> Vec<Msg> {
        ui.into_messages().collect()
    }

    #[test]
    fn tab_skips_the_disabled_button_and_space_or_enter_press_the_focused_one() {
        crate::simulated::use_tiny_skia();
        let mut ui = simulator(view(false));
        assert_eq!(ui.tap_key(key::Named::Tab), Status::Captured);
        assert_eq!(ui.tap_key(key::Named::Space), Status::Captured);
        assert_eq!(ui.tap_key(key::Named::Tab), Status::Captured);
        assert_eq!(ui.tap_key(key::Named::Enter), Status::Captured);
        assert_eq!(messages(ui), vec![Msg::A, Msg::B]);
    }

    #[test]
    fn space_toggles_the_focused_checkbox_and_leaves_enter_to_the_window() {
        crate::simulated::use_tiny_skia();
        let mut ui = simulator(view(false));
        for _ in 0..3 {
            ui.tap_key(key::Named::Tab);
        }
        assert_eq!(ui.tap_key(key::Named::Space), Status::Captured);
        assert_eq!(ui.tap_key(key::Named::Enter), Status::Ignored);
        assert_eq!(messages(ui), vec![Msg::Check(true)]);

        let mut ui = simulator(view(true));
        for _ in 0..3 {
            ui.tap_key(key::Named::Tab);
        }
        ui.tap_key(key::Named::Space);
        assert_eq!(messages(ui), vec![Msg::Check(false)]);
    }

    #[test]
    fn shift_tab_goes_backwards_through_text_fields_and_buttons() {
        crate::simulated::use_tiny_skia();
        let mut ui = simulator(view(false));
        // From nothing: the last, the text field, which takes typing.
        ui.simulate(shift_tab());
        assert_eq!(ui.typewrite("7"), Status::Captured);
        // Then back over the checkbox to B.
        ui.simulate(shift_tab());
        ui.simulate(shift_tab());
        ui.tap_key(key::Named::Space);
        assert_eq!(messages(ui), vec![Msg::Typed("7".into()), Msg::B]);
    }

    #[test]
    fn tab_goes_round_at_either_end() {
        crate::simulated::use_tiny_skia();
        let mut ui = simulator(view(false));
        // A, B, the checkbox, the field, then A again.
        for _ in 0..5 {
            assert_eq!(ui.tap_key(key::Named::Tab), Status::Captured);
        }
        ui.tap_key(key::Named::Space);
        // Back past A: the field, the last.
        ui.simulate(shift_tab());
        ui.typewrite("1");
        assert_eq!(messages(ui), vec![Msg::A, Msg::Typed("1".into())]);
    }

    #[test]
    fn a_click_ends_the_keyboard_focus() {
        crate::simulated::use_tiny_skia();
        let mut ui = simulator(view(false));
        ui.tap_key(key::Named::Tab);
        ui.click("B").unwrap();
        // Space no longer presses A; the click pressed B.
        assert_eq!(ui.tap_key(key::Named::Space), Status::Ignored);
        assert_eq!(messages(ui), vec![Msg::B]);
    }

    /// Pixels of the ring's colour in the view as drawn.
    fn ring_pixels(ui: &mut iced_test::Simulator<'_, Msg>) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = ui.snapshot(&iced::Theme::Light).unwrap();
        assert!(snapshot.matches_image(dir.path().join("ring")).unwrap());
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "png"))
            .unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let ring = RING.into_rgba8();
        buf[..info.buffer_size()]
            .chunks(info.color_type.samples())
            .filter(|px| px.iter().zip(ring).take(3).all(|(a, b)| a.abs_diff(b) < 24))
            .count()
    }

    #[test]
    fn the_focused_widget_has_a_ring() {
        crate::simulated::use_tiny_skia();
        let mut ui = simulator(view(false));
        assert_eq!(ring_pixels(&mut ui), 0, "no ring without focus");
        ui.tap_key(key::Named::Tab);
        let ring = ring_pixels(&mut ui);
        // A 2 px outline around a button about 30 px tall.
        assert!(ring > 100, "{ring} ring pixels");
    }
}
