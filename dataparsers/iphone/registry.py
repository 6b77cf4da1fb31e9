"""nerfstudio plugin registration of the ``iphone`` dataparser (entry-point group ``nerfstudio.dataparser_configs``)."""

from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from dataparsers.iphone.dataparser import IPhoneDataParserConfig

iphone = DataParserSpecification(
    config=IPhoneDataParserConfig(),
    description="DyCheck iPhone scene + Shape of Motion priors (depth, masks, 2D tracks); train/val split held out.",
)
