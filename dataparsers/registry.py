"""nerfstudio plugin registrations (entry-point group ``nerfstudio.dataparser_configs``)."""

from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from dataparsers.easyvolcap import EasyVolcapDataParserConfig, ENeRFOutdoorDataParserConfig
from dataparsers.multiview import MultiViewAutoDataParserConfig
from dataparsers.neural3dv import Neural3DVDataParserConfig
from dataparsers.selfcap import SelfCapDataParserConfig

multiview = DataParserSpecification(
    config=MultiViewAutoDataParserConfig(),
    description="Multi-view video scene; detects Neural3DV, SelfCap, ENeRF-Outdoor or EasyVolcap from the folder.",
)
neural3dv = DataParserSpecification(
    config=Neural3DVDataParserConfig(), description="Neural3DV / DyNeRF: camXX.mp4 + poses_bounds.npy."
)
enerf_outdoor = DataParserSpecification(
    config=ENeRFOutdoorDataParserConfig(),
    description="ENeRF-Outdoor: images/NN/NNNNNN.jpg + intri.yml / extri.yml (EasyVolcap calibration).",
)
selfcap = DataParserSpecification(
    config=SelfCapDataParserConfig(), description="SelfCap: videos/<camera>.mp4 + optimized/intri.yml, extri.yml."
)
easyvolcap = DataParserSpecification(
    config=EasyVolcapDataParserConfig(), description="EasyVolcap: images/<camera>/<frame>.jpg + intri.yml / extri.yml."
)
