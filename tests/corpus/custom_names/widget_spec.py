def it_renders():
    assert True


class WidgetSuite:
    def check_widget(self):
        assert True
