import asyncio


async def test_async_module_level():
    await asyncio.sleep(0)


async def test_async_generator_style():
    # An async generator "test": not a coroutine function, but still async.
    if False:
        yield None


class TestAsyncClass:
    async def test_async_method(self):
        await asyncio.sleep(0)

    def test_sync_method(self):
        assert True


def test_normal():
    assert asyncio.iscoroutinefunction(test_async_module_level)
